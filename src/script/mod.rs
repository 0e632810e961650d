//! State machine scripts (Rhai). For now: the sandboxed engine's settings and the compile
//! check that runs when a state machine is stored, so a syntax error is a 400 with its
//! line and column instead of a failure at run time.

use rhai::Engine;
use rhai::module_resolvers::DummyModuleResolver;

/// Deepest expression nesting a script may have.
const MAX_EXPR_DEPTH: usize = 64;

/// An engine that can read no files, import no modules and see no environment.
pub fn sandboxed_engine() -> Engine {
    let mut engine = Engine::new();
    engine.set_module_resolver(DummyModuleResolver::new());
    engine.set_max_expr_depths(MAX_EXPR_DEPTH, MAX_EXPR_DEPTH);
    engine.disable_symbol("eval");
    engine.disable_symbol("import");
    engine
}

/// Compiles `body`; the error names the line and column of the first problem.
pub fn check(body: &str) -> Result<(), String> {
    match sandboxed_engine().compile(body) {
        Ok(_) => Ok(()),
        Err(err) => {
            let position = err.position();
            match (position.line(), position.position()) {
                (Some(line), Some(column)) => {
                    Err(format!("script error at line {line}, column {column}: {}", err.err_type()))
                }
                (Some(line), None) => Err(format!("script error at line {line}: {}", err.err_type())),
                _ => Err(format!("script error: {}", err.err_type())),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn reports_line_and_column() {
        assert!(super::check("let x = 1;\nx + 1").is_ok());
        let err = super::check("let x = 1;\nlet = ;").unwrap_err();
        assert!(err.contains("line 2"), "{err}");
        assert!(err.contains("column"), "{err}");
        assert!(super::check("import \"fs\" as fs;").is_err(), "imports are refused");
    }
}
