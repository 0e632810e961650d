//! `runner --agent`: the first process of a warm container. It serves the runs the service
//! sends over the container's attached stdin and answers on its stdout (`frame`), one run at a
//! time, each as a uid of its own in a fresh directory `/runs/<uid>`:
//!
//! 1. `GO` and the input archive: the directory is made and the archive unpacked (`untar`);
//! 2. the script runs as the run's uid (`child`), its stdout and stderr kept as a tagged log
//!    (`log`), under the execution timeout; then every process of the uid is killed (`sweep`);
//! 3. `STATUS`, `RETURNED` (its `return.json`), the log; the service answers with the `OUTPUTS`
//!    it wants, which go back as one archive (`pack`);
//! 4. the run's files are removed (`sweep`) and `DONE` says whether anything was left.
//!
//! The agent runs as root inside the container (to take a run's uid, and to remove what a run
//! left), with only the capabilities that needs; a run has none, and no way to reach it: its
//! uid differs, its descriptors are the agent's pipes, not the attached stream. It ends when
//! its stdin ends, that is when the service lets go of the container.

mod child;
mod frame;
mod log;
mod pack;
mod sweep;
mod untar;

use std::fs::{self, DirBuilder, File};
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, chown};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use crate::memory::MemoryCgroup;

/// Where run directories live (a tmpfs the service mounts, writable by root only).
const RUNS: &str = "/runs";
/// Most bytes of `return.json` sent back.
const RETURN_LIMIT: u64 = 1 << 20;
/// Bytes of the outputs archive a frame carries.
const ARCHIVE_PIECE: usize = 256 << 10;

/// Serves runs until the service closes the stream.
pub fn serve() -> ExitCode {
    // SAFETY: sets the file mode mask of this process, inherited by runs.
    unsafe { libc::umask(0o022) };
    let mut input = io::BufReader::with_capacity(256 << 10, io::stdin().lock());
    let mut output = BufWriter::with_capacity(256 << 10, io::stdout().lock());
    loop {
        let frame = match frame::read(&mut input) {
            Ok(Some(frame)) => frame,
            Ok(None) => return ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("runner agent: reading a request: {err}");
                return ExitCode::FAILURE;
            }
        };
        let served = match frame.kind {
            frame::GO => match Order::parse(&frame.payload) {
                Ok(order) => serve_run(&order, &mut input, &mut output),
                Err(message) => refuse(&mut output, &message),
            },
            other => refuse(&mut output, &format!("unexpected request {:?}", other as char)),
        };
        if let Err(err) = served.and_then(|()| output.flush()) {
            eprintln!("runner agent: {err}");
            return ExitCode::FAILURE;
        }
    }
}

/// A run as the service orders it.
struct Order {
    uid: u32,
    timeout: Duration,
    log_max: usize,
    shebang: bool,
}

impl Order {
    fn parse(payload: &[u8]) -> Result<Order, String> {
        let text = String::from_utf8_lossy(payload);
        let value = |key: &str| -> Result<u64, String> {
            text.lines()
                .find_map(|line| line.strip_prefix(key).and_then(|rest| rest.strip_prefix('=')))
                .ok_or_else(|| format!("the run order has no {key}"))?
                .trim()
                .parse()
                .map_err(|_| format!("the run order's {key} is not a number"))
        };
        let uid = u32::try_from(value("uid")?).map_err(|_| "uid out of range".to_string())?;
        if uid < 1000 {
            return Err(format!("uid {uid} is not a run's uid"));
        }
        Ok(Order {
            uid,
            timeout: Duration::from_millis(value("timeout_ms")?),
            log_max: value("log_max")? as usize,
            shebang: value("shebang")? == 1,
        })
    }
}

fn refuse(output: &mut impl Write, message: &str) -> io::Result<()> {
    frame::write(output, frame::FAILED, message.as_bytes())
}

fn serve_run(order: &Order, input: &mut impl Read, output: &mut impl Write) -> io::Result<()> {
    let dir = PathBuf::from(RUNS).join(order.uid.to_string());
    let prepared = prepare(&dir, order.uid, input);
    let workdir = match prepared {
        Ok(workdir) => workdir,
        Err(err) => {
            let _ = sweep::remove_files(&dir, order.uid);
            return refuse(output, &format!("preparing the run directory {}: {err}", dir.display()));
        }
    };
    let oom_kills = || MemoryCgroup::find().and_then(|cgroup| cgroup.oom_kills());
    let oom_before = oom_kills();
    let mut log = log::RunLog::new(order.log_max);
    let ended = child::run(&dir, order.uid, order.shebang, order.timeout, &mut log).unwrap_or_else(|err| {
        log.push(log::STDERR, format!("cannot start the actor's script: {err}\n").as_bytes());
        log.finish();
        child::Ended { code: 127, timed_out: false, survivors: !sweep::kill_all(order.uid) }
    });
    let oom = oom_kills() != oom_before;
    let status = format!("exit {} {} {}", ended.code, u8::from(ended.timed_out), u8::from(oom));
    frame::write(output, frame::STATUS, status.as_bytes())?;
    frame::write(output, frame::RETURNED, &read_returned(&workdir))?;
    for (stream, line) in log.lines() {
        let mut payload = Vec::with_capacity(line.len() + 1);
        payload.push(*stream);
        payload.extend_from_slice(line);
        frame::write(output, frame::LOG_LINE, &payload)?;
    }
    let dropped = format!("{} {}", log.dropped_lines, log.dropped_bytes);
    frame::write(output, frame::LOG_END, dropped.as_bytes())?;
    output.flush()?;

    let wanted = match frame::read(input)? {
        Some(frame) if frame.kind == frame::OUTPUTS => String::from_utf8_lossy(&frame.payload).into_owned(),
        Some(frame) => return Err(io::Error::other(format!("expected the outputs, got {:?}", frame.kind as char))),
        None => return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the stream ended before the outputs")),
    };
    let names: Vec<&str> = wanted.lines().filter(|name| !name.is_empty()).collect();
    let mut archive = Pieces { output: &mut *output, buf: Vec::with_capacity(ARCHIVE_PIECE) };
    pack::pack(&workdir, &names, &mut archive)?;
    archive.finish()?;
    drop(workdir);

    let left = if ended.survivors {
        Some("a process of the run survived it".to_owned())
    } else {
        sweep::remove_files(&dir, order.uid)
    };
    let done = match left {
        None => "clean".to_owned(),
        Some(what) => format!("left {what}"),
    };
    frame::write(output, frame::DONE, done.as_bytes())
}

/// Makes the run's directory from the input archive, owned by the run's uid, and opens its
/// work directory. The input frames are read to their end whatever happens.
fn prepare(dir: &Path, uid: u32, input: &mut impl Read) -> io::Result<File> {
    let made = DirBuilder::new().mode(0o700).create(dir);
    let mut archive = frame::Payloads::new(input, frame::INPUT);
    let unpacked = made.and_then(|()| untar::unpack(&mut archive, dir, uid));
    archive.drain()?;
    unpacked?;
    let workdir = dir.join("workdir");
    for own in [dir.join("tmp"), workdir.clone()] {
        if !own.exists() {
            DirBuilder::new().mode(0o700).create(&own)?;
        }
        chown(&own, Some(uid), Some(uid))?;
    }
    chown(dir, Some(uid), Some(uid))?;
    fs::OpenOptions::new().read(true).custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW).open(workdir)
}

/// The run's `return.json`, at most `RETURN_LIMIT` bytes of it.
fn read_returned(workdir: &File) -> Vec<u8> {
    let mut content = Vec::new();
    if let Some(file) = pack::open_regular(workdir, "return.json") {
        let _ = file.take(RETURN_LIMIT).read_to_end(&mut content);
    }
    content
}

/// Writes an archive as `ARCHIVE` frames, ending with an empty one.
struct Pieces<'a, W: Write> {
    output: &'a mut W,
    buf: Vec<u8>,
}

impl<W: Write> Pieces<'_, W> {
    fn finish(mut self) -> io::Result<()> {
        self.send()?;
        frame::write(self.output, frame::ARCHIVE, &[])
    }

    fn send(&mut self) -> io::Result<()> {
        if !self.buf.is_empty() {
            frame::write(self.output, frame::ARCHIVE, &self.buf)?;
            self.buf.clear();
        }
        Ok(())
    }
}

impl<W: Write> Write for Pieces<'_, W> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let n = bytes.len().min(ARCHIVE_PIECE - self.buf.len());
        self.buf.extend_from_slice(&bytes[..n]);
        if self.buf.len() == ARCHIVE_PIECE {
            self.send()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send()?;
        self.output.flush()
    }
}
