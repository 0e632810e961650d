//! `wharf completion <shell>`: a completion script for bash, zsh, fish, elvish or PowerShell,
//! generated from the same command definition the binary parses with.

use clap::Args;
use clap_complete::Shell;

#[derive(Debug, Args)]
pub struct CompletionArgs {
    /// The shell to complete in: bash, zsh, fish, elvish or powershell.
    pub shell: Shell,
}

impl CompletionArgs {
    /// Writes the script to standard output.
    pub fn print(&self) {
        clap_complete::generate(self.shell, &mut super::command(), "wharf", &mut std::io::stdout());
    }
}
