//! Warm sandboxes on one node: a container started once with an idle command, that serves
//! the runs of one instance one after another through `exec`. Each run is a uid of its own
//! (`FIRST_RUN_UID + n`) in a fresh directory of an in-memory file system mounted at `/runs`,
//! the only writable place of the container (its root file system is read-only). After the
//! run every process of its uid is killed and every file of its uid removed; what could not
//! be is a doubt, and a container in doubt serves no further run.

use std::collections::HashMap;
use std::pin::Pin;
use std::time::Instant;

use bollard::container::LogOutput;
use bollard::exec::{StartExecOptions, StartExecResults};
use bollard::models::{ContainerCreateBody, ExecConfig};
use bollard::query_parameters::CreateContainerOptionsBuilder;
use bytes::Bytes;
use futures::{Stream, StreamExt};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use super::container::{self, ContainerOutcome, ContainerSpec, Timings};
use super::outputs::{self, OutputSink};
use super::{DockerClient, DockerError, archive};
use crate::model::log::{ContainerLog, LogLine, LogStream};

/// Where run directories live: a tmpfs, the only writable place of a warm container.
const RUNS: &str = "/runs";
/// Run `n` of a container runs as this uid plus `n`: no two runs of a container share a uid.
pub const FIRST_RUN_UID: u32 = 20000;
/// Most bytes of `return.json` read back, as for a fresh container.
const RETURN_LIMIT: usize = 1 << 20;
const MAX_LOG_TAIL: usize = 4096;
/// Kills every process of the run's uid but the shell itself, until none is left (or gives up
/// after a second); leaves `left` non-empty when some survived.
const KILL_ALL: &str = r#"n=0
while :; do
  kill -9 -1 2>/dev/null; left=
  for p in /proc/[0-9]*; do [ "${p#/proc/}" != "$$" ] && [ -O "$p" ] && left=1; done
  [ -z "$left" ] && break
  n=$((n + 1)); [ "$n" -ge 100 ] && break
  sleep 0.01
done"#;

type Output = Pin<Box<dyn Stream<Item = Result<LogOutput, bollard::errors::Error>> + Send>>;
type Input = Pin<Box<dyn AsyncWrite + Send>>;

/// How one warm run ended.
#[derive(Debug)]
pub struct WarmRun {
    pub outcome: ContainerOutcome,
    /// Why the container must serve no further run; `None`: it may.
    pub doubt: Option<String>,
}

impl DockerClient {
    /// Creates and starts a warm container for runs of `spec`'s image and limits: the same
    /// limits, labels and isolation as a fresh one, a read-only root file system, a tmpfs of
    /// `disk_size` bytes at `/runs`, and an init that reaps what runs leave. Returns its id.
    pub async fn start_warm_container(&self, spec: &ContainerSpec, disk_size: u64) -> Result<String, DockerError> {
        let mut host_config = container::host_config(&spec.limits, spec.log_max_bytes);
        host_config.readonly_rootfs = Some(true);
        host_config.init = Some(true);
        host_config.tmpfs =
            Some(HashMap::from([(RUNS.to_owned(), format!("rw,nosuid,nodev,size={disk_size},mode=1777"))]));
        let body = ContainerCreateBody {
            image: Some(spec.image.clone()),
            entrypoint: Some(vec!["/bin/sh".into(), "-c".into(), "exec sleep 2147483647".into()]),
            cmd: Some(vec![]),
            working_dir: Some("/".into()),
            user: Some(format!("{0}:{0}", archive::ACTOR_UID)),
            env: Some(vec!["PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin".into()]),
            labels: Some(spec.labels.clone()),
            network_disabled: Some(!spec.limits.enable_network),
            host_config: Some(host_config),
            ..Default::default()
        };
        let options = CreateContainerOptionsBuilder::default().name(&spec.name).build();
        let created = self.call("creating a warm container", self.docker.create_container(Some(options), body)).await?;
        if let Err(err) = self.call("starting a warm container", self.docker.start_container(&created.id, None)).await {
            let _ = self.remove_container(&created.id).await;
            return Err(err);
        }
        Ok(created.id)
    }

    /// Runs `spec` as run number `run` of the warm container `id`: inputs in, the script under
    /// the execution timeout, outputs out into `sink`, then the run's processes and files gone.
    pub async fn warm_run(
        &self,
        id: &str,
        run: u32,
        spec: &ContainerSpec,
        cancel: &CancellationToken,
        sink: &mut dyn OutputSink,
    ) -> Result<WarmRun, DockerError> {
        let uid = FIRST_RUN_UID + run;
        let user = format!("{uid}:{uid}");
        let dir = format!("{RUNS}/{uid}");
        let mut timings = Timings::default();
        let broken =
            |doing: &'static str, message: String| DockerError::Broken { node: self.node.clone(), doing, message };

        let clock = Instant::now();
        let tar =
            archive::inputs_archive(&spec.script, &spec.inputs).map_err(|e| broken("packing inputs", e.to_string()))?;
        let body = if spec.script.starts_with("#!") { "\"$D/actor/run\"" } else { "/bin/sh \"$D/actor/run\"" };
        let script = format!(
            r#"umask 077; D={dir}
mkdir "$D" "$D/tmp" && cd "$D" && tar -xf - || exit 120
cd workdir || exit 120
export HOME="$D/workdir" TMPDIR="$D/tmp"
umask 022
oom0=$(grep '^oom_kill ' /sys/fs/cgroup/memory.events 2>/dev/null)
( exec {body} </dev/null >"$D/log" 2>&1 )
code=$?
{KILL_ALL}
oom1=$(grep '^oom_kill ' /sys/fs/cgroup/memory.events 2>/dev/null)
oom=0; [ "$oom0" != "$oom1" ] && oom=1
echo "exit $code ${{left:-0}} $oom"
[ -f return.json ] && head -c {RETURN_LIMIT} return.json
exit 0"#
        );
        let (mut output, mut input) = self.exec(id, &user, script, true).await?;
        timings.upload = clock.elapsed();

        let clock = Instant::now();
        let feed = async move {
            let mut tar = tar;
            while let Some(chunk) = tar.next().await {
                input.write_all(&chunk?).await?;
            }
            input.shutdown().await
        };
        let read = async {
            let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
            while let Some(item) = output.next().await {
                match item {
                    Ok(LogOutput::StdOut { message }) if stdout.len() <= RETURN_LIMIT + 64 => {
                        stdout.extend_from_slice(&message)
                    }
                    Ok(LogOutput::StdErr { message }) if stderr.len() < MAX_LOG_TAIL => {
                        stderr.extend_from_slice(&message)
                    }
                    Ok(_) => {}
                    Err(source) => {
                        return Err(DockerError::Engine {
                            node: self.node.clone(),
                            doing: "running a warm run",
                            source,
                        });
                    }
                }
            }
            Ok((stdout, stderr))
        };
        let both = async {
            // A failed feed shows in what the run says (tar fails); the output decides.
            let (fed, read) = tokio::join!(feed, read);
            (fed, read)
        };
        let limit = spec.limits.execution_timeout;
        let (mut timed_out, mut cancelled) = (false, false);
        let mut said = None;
        tokio::select! {
            done = tokio::time::timeout(limit, both) => match done {
                Ok((fed, read)) => {
                    let (stdout, stderr) = read?;
                    said = Some((stdout, stderr, fed.err()));
                }
                Err(_) => timed_out = true,
            },
            _ = cancel.cancelled() => cancelled = true,
        }
        timings.wait = clock.elapsed();
        let mut outcome = ContainerOutcome {
            container_id: id.to_owned(),
            exit_code: -1,
            timed_out,
            oom_killed: false,
            cancelled,
            outputs: Vec::new(),
            missing: Vec::new(),
            too_large: Vec::new(),
            outputs_problem: None,
            log_tail: String::new(),
            log: ContainerLog::default(),
            timings: Timings::default(),
        };
        let Some((stdout, stderr, fed)) = said else {
            // Processes of the run may still be at work: the container goes with them.
            let why = if timed_out { "the run timed out" } else { "the run was cancelled" };
            outcome.timings = timings;
            return Ok(WarmRun { outcome, doubt: Some(why.into()) });
        };
        let newline = stdout.iter().position(|b| *b == b'\n').unwrap_or(stdout.len());
        let status = String::from_utf8_lossy(&stdout[..newline]).into_owned();
        let fields: Vec<&str> = status.split_whitespace().collect();
        let (code, left, oom) = match fields.as_slice() {
            ["exit", code, left, oom] => (code.parse::<i64>().ok(), *left != "0", *oom == "1"),
            _ => (None, false, false),
        };
        let Some(code) = code else {
            let mut message = String::from_utf8_lossy(&stderr).trim().to_owned();
            if let Some(err) = fed {
                message.push_str(&format!(" (sending the inputs: {err})"));
            }
            return Err(broken("running a warm run", format!("the run's shell ended without a status: {message}")));
        };
        outcome.exit_code = code;
        outcome.oom_killed = oom;
        let mut doubt = None;
        if left {
            doubt = Some("a process of the run survived it".to_owned());
        } else if oom {
            doubt = Some("the container ran out of memory".to_owned());
        }
        let returned = stdout.get(newline + 1..).unwrap_or_default();

        let clock = Instant::now();
        let mut wanted = spec.outputs.clone();
        if !returned.is_empty() {
            match serde_json::from_slice::<container::ReturnFile>(returned) {
                Ok(listed) => {
                    for name in listed.outputs {
                        if crate::model::blob::validate_file_name(&name).is_ok() && !wanted.contains(&name) {
                            wanted.push(name);
                        }
                    }
                }
                Err(err) => outcome.log_tail.push_str(&format!("\n(return.json is not valid: {err})")),
            }
        }
        let too_many = wanted.len() > spec.max_outputs;
        let archive = if wanted.is_empty() || too_many { "" } else { "tar -cf - workdir" };
        let keep = spec.log_max_bytes;
        let script = format!(
            r#"D={dir}; cd "$D" || exit 120
wc -c <log >&2 2>/dev/null || echo 0 >&2
tail -c {keep} log >&2 2>/dev/null
echo >&2
{archive}
cd / && rm -rf "$D"
for d in /runs /dev/shm /dev/mqueue; do find "$d" -xdev -mindepth 1 -maxdepth 1 -user {uid} -exec rm -rf {{}} + 2>/dev/null; done
left=$(find /runs /dev/shm /dev/mqueue -xdev -mindepth 1 -maxdepth 1 -user {uid} 2>/dev/null | head -n 1)
[ -n "$left" ] && echo "@wharf-left $left" >&2
exit 0"#
        );
        let (output, _input) = self.exec(id, &user, script, false).await?;
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(8);
        let node = self.node.clone();
        let splitter = tokio::spawn(async move {
            let mut output = output;
            let mut stderr = Vec::new();
            let mut tx = Some(tx);
            while let Some(item) = output.next().await {
                match item {
                    Ok(LogOutput::StdOut { message }) => {
                        // Once collection stopped reading, the rest is drained so the exec can end.
                        if let Some(sender) = &tx
                            && sender.send(Ok(message)).await.is_err()
                        {
                            tx = None;
                        }
                    }
                    Ok(LogOutput::StdErr { message }) => stderr.extend_from_slice(&message),
                    Ok(_) => {}
                    Err(source) => return Err(DockerError::Engine { node, doing: "collecting a warm run", source }),
                }
            }
            Ok(stderr)
        });
        if too_many {
            outcome.outputs_problem = Some(format!(
                "{} outputs declared and listed in return.json, more than the {} one actor may give (executor.max_outputs)",
                wanted.len(),
                spec.max_outputs
            ));
        } else if !wanted.is_empty() {
            let stream = outputs::archive_stream(tokio_stream_of(rx));
            let deadline = Instant::now() + limit + self.call_timeout;
            let wanted = outputs::Wanted {
                names: wanted,
                file_limit: spec.limits.output_limit,
                total_limit: spec.max_outputs_size,
            };
            let found = outputs::collect(&self.node, stream, wanted, sink, cancel, deadline).await?;
            outcome.outputs = found.files;
            outcome.missing = found.missing;
            outcome.too_large = found.too_large;
            outcome.outputs_problem = found.stopped;
            outcome.cancelled |= found.cancelled;
        } else {
            drop(rx);
        }
        let stderr = tokio::time::timeout(self.call_timeout, splitter)
            .await
            .map_err(|_| DockerError::Timeout {
                node: self.node.clone(),
                doing: "cleaning a warm run",
                secs: self.call_timeout.as_secs(),
            })?
            .map_err(|e| broken("cleaning a warm run", e.to_string()))??;
        let text = String::from_utf8_lossy(&stderr);
        let (tail, leftover) = match text.rfind("@wharf-left ") {
            // The marker comes last; a run printing it only gets its container discarded.
            Some(at) => (&text[..at], Some(text[at + "@wharf-left ".len()..].trim().to_owned())),
            None => (&text[..], None),
        };
        outcome.log = run_log(tail, spec.log_max_bytes);
        let mut log_tail = outcome.log.tail_text(spec.log_tail_lines, MAX_LOG_TAIL);
        log_tail.push_str(&outcome.log_tail);
        outcome.log_tail = log_tail;
        if let Some(path) = leftover {
            doubt.get_or_insert(format!("{path} of the run could not be removed"));
        }
        if outcome.outputs_problem.is_some() || outcome.cancelled {
            doubt.get_or_insert("the run's outputs were not all read".into());
        }
        timings.collect = clock.elapsed();
        outcome.timings = timings;
        Ok(WarmRun { outcome, doubt })
    }

    /// Starts `script` in the container as `user`, attached; its stdin only if `stdin`.
    async fn exec(&self, id: &str, user: &str, script: String, stdin: bool) -> Result<(Output, Input), DockerError> {
        let config = ExecConfig {
            attach_stdin: Some(stdin),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            cmd: Some(vec!["/bin/sh".into(), "-c".into(), script]),
            user: Some(user.to_owned()),
            working_dir: Some("/".into()),
            ..Default::default()
        };
        let created = match self.call("starting a warm run", self.docker.create_exec(id, config)).await {
            // 409: the container is not running any more (its init killed, out of memory).
            Err(DockerError::Engine {
                source: bollard::errors::Error::DockerResponseServerError { status_code: 409, message },
                ..
            }) => {
                return Err(DockerError::Broken {
                    node: self.node.clone(),
                    doing: "starting a warm run",
                    message: format!("the warm container is not running: {message}"),
                });
            }
            other => other?,
        };
        let options = StartExecOptions { detach: false, tty: false, output_capacity: Some(1 << 20) };
        match self.call("starting a warm run", self.docker.start_exec(&created.id, Some(options))).await? {
            StartExecResults::Attached { output, input } => Ok((output, input)),
            StartExecResults::Detached => Err(DockerError::Broken {
                node: self.node.clone(),
                doing: "starting a warm run",
                message: "the engine started the run detached".into(),
            }),
        }
    }
}

/// A warm run's log from what the cleaning exec printed: the size of the run's log file, then
/// its last `max_bytes`. Stdout and stderr share that file in the order they were written, so
/// every line shows as stdout, without the engine's times.
fn run_log(printed: &str, max_bytes: u64) -> ContainerLog {
    let mut log = ContainerLog::default();
    let (size, text) = printed.split_once('\n').unwrap_or((printed, ""));
    let size: u64 = size.trim().parse().unwrap_or(0);
    // `echo` after the tail ends the last line; a file that ended with one leaves an empty line.
    let text = text.strip_suffix('\n').unwrap_or(text);
    let text = text.strip_suffix('\n').unwrap_or(text);
    if text.is_empty() {
        return log;
    }
    let mut parts: Vec<&str> = text.split('\n').collect();
    if size > max_bytes && parts.len() > 1 {
        // The tail began inside a line: that part goes with the lines before it.
        let cut = parts.remove(0);
        log.dropped_bytes += (size - text.len() as u64) as i64 + cut.len() as i64;
        log.dropped_lines += 1;
    }
    log.lines = parts
        .into_iter()
        .map(|line| LogLine {
            time: String::new(),
            stream: LogStream::Stdout,
            text: line.strip_suffix('\r').unwrap_or(line).to_owned(),
        })
        .collect();
    log.bound(max_bytes);
    log
}

/// The receiving end of a channel as a stream.
fn tokio_stream_of(
    mut rx: tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>,
) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

#[cfg(test)]
mod tests {
    use super::run_log;

    #[test]
    fn run_log_keeps_whole_lines_of_the_tail() {
        let log = run_log("8\na\nbb\ncc\n\n", 100);
        let texts: Vec<&str> = log.lines.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(texts, ["a", "bb", "cc"]);
        assert_eq!(log.dropped_lines, 0);

        let log = run_log("12\nb\ncc\n\n", 5);
        let texts: Vec<&str> = log.lines.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(texts, ["cc"]);
        assert_eq!(log.dropped_lines, 1);

        assert!(run_log("0\n\n", 5).lines.is_empty());
        assert!(run_log("", 5).lines.is_empty());
    }
}
