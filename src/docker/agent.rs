//! Warm sandboxes on one node: a container whose first process is the runner's agent
//! (`runner --agent`, images/runner/src/agent), attached once when it starts, that serves the
//! runs of one instance one after another over that attached stream. Each run is a uid of its
//! own (`FIRST_RUN_UID + n`) in a fresh directory of an in-memory file system at `/runs`, the
//! only place of the container a run can write besides `/dev/shm`; the rest of its root file
//! system is read-only. After a run the agent kills every process of its uid and removes every
//! file and IPC object of that uid; what could not be is a doubt, and a container in doubt
//! serves no further run.
//!
//! The framing (a kind byte, a little-endian u32 length, the payload) and the kinds below must
//! match the agent's `frame.rs`.

use std::collections::HashMap;
use std::pin::Pin;
use std::time::{Duration, Instant};

use bollard::container::LogOutput;
use bollard::models::ContainerCreateBody;
use bollard::query_parameters::{AttachContainerOptionsBuilder, CreateContainerOptionsBuilder};
use bytes::{Buf, Bytes, BytesMut};
use futures::{Stream, StreamExt};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use super::container::{self, ContainerOutcome, ContainerSpec, Timings};
use super::outputs::{self, OutputSink};
use super::{DockerClient, DockerError, archive};
use crate::model::log::{ContainerLog, LogLine, LogStream};

/// Where run directories live: a tmpfs only the agent may create entries in.
const RUNS: &str = "/runs";
/// The agent: the runner, started with `--agent`.
const AGENT: &str = "/usr/bin/runner";
/// Run `n` of a container runs as this uid plus `n`: no two runs of a container share a uid.
pub const FIRST_RUN_UID: u32 = 20000;
/// What the agent needs: to take a run's uid, to give it its files, and to remove them.
const AGENT_CAPABILITIES: [&str; 5] = ["CHOWN", "DAC_OVERRIDE", "FOWNER", "SETUID", "SETGID"];
/// Bytes of input a frame carries.
const INPUT_PIECE: usize = 1 << 20;
/// How long past the execution timeout the agent may take to say how a run ended.
const GRACE: Duration = Duration::from_secs(10);
/// Most bytes of the agent's own stderr kept, for error messages.
const MAX_DIAGNOSTICS: usize = 4096;
const MAX_LOG_TAIL: usize = 4096;

mod kind {
    pub const GO: u8 = b'G';
    pub const INPUT: u8 = b'I';
    pub const OUTPUTS: u8 = b'O';
    pub const STATUS: u8 = b'S';
    pub const RETURNED: u8 = b'R';
    pub const LOG_LINE: u8 = b'L';
    pub const LOG_END: u8 = b'l';
    pub const ARCHIVE: u8 = b'T';
    pub const DONE: u8 = b'D';
    pub const FAILED: u8 = b'X';
}

type Output = Pin<Box<dyn Stream<Item = Result<LogOutput, bollard::errors::Error>> + Send>>;
type Input = Pin<Box<dyn AsyncWrite + Send>>;

/// A running warm container and the stream to its agent.
pub struct WarmAgent {
    pub id: String,
    output: Output,
    input: Input,
    buffer: BytesMut,
    diagnostics: Vec<u8>,
}

/// How one warm run ended.
#[derive(Debug)]
pub struct WarmRun {
    pub outcome: ContainerOutcome,
    /// Why the container must serve no further run; `None`: it may.
    pub doubt: Option<String>,
}

impl DockerClient {
    /// Creates, attaches and starts a warm container for runs of `spec`'s image and limits:
    /// the same limits, labels and isolation as a fresh one, a read-only root file system, a
    /// tmpfs of `disk_size` bytes at `/runs`, and an init that reaps what runs leave.
    pub async fn start_warm_container(&self, spec: &ContainerSpec, disk_size: u64) -> Result<WarmAgent, DockerError> {
        let mut host_config = container::host_config(&spec.limits, spec.log_max_bytes);
        host_config.readonly_rootfs = Some(true);
        host_config.init = Some(true);
        host_config.cap_add = Some(AGENT_CAPABILITIES.iter().map(|c| (*c).to_owned()).collect());
        host_config.tmpfs =
            Some(HashMap::from([(RUNS.to_owned(), format!("rw,exec,nosuid,nodev,size={disk_size},mode=0711"))]));
        let body = ContainerCreateBody {
            image: Some(spec.image.clone()),
            entrypoint: Some(vec![AGENT.into(), "--agent".into()]),
            cmd: Some(vec![]),
            working_dir: Some("/".into()),
            user: Some("0:0".into()),
            env: Some(vec!["PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin".into()]),
            labels: Some(spec.labels.clone()),
            network_disabled: Some(!spec.limits.enable_network),
            open_stdin: Some(true),
            stdin_once: Some(false),
            attach_stdin: Some(true),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            host_config: Some(host_config),
            ..Default::default()
        };
        let options = CreateContainerOptionsBuilder::default().name(&spec.name).build();
        let created = self.call("creating a warm container", self.docker.create_container(Some(options), body)).await?;
        let started = async {
            let options =
                AttachContainerOptionsBuilder::default().stdin(true).stdout(true).stderr(true).stream(true).build();
            let attached = self
                .call("attaching to a warm container", self.docker.attach_container(&created.id, Some(options)))
                .await?;
            self.call("starting a warm container", self.docker.start_container(&created.id, None)).await?;
            Ok::<_, DockerError>(attached)
        };
        match started.await {
            Ok(attached) => Ok(WarmAgent {
                id: created.id,
                output: attached.output,
                input: attached.input,
                buffer: BytesMut::new(),
                diagnostics: Vec::new(),
            }),
            Err(err) => {
                let _ = self.remove_container(&created.id).await;
                Err(err)
            }
        }
    }

    /// Runs `spec` as run number `run` of the warm container: inputs in, the script under the
    /// execution timeout (the agent keeps it), outputs out into `sink`, then the run's
    /// processes and files gone.
    pub async fn warm_run(
        &self,
        agent: &mut WarmAgent,
        run: u32,
        spec: &ContainerSpec,
        cancel: &CancellationToken,
        sink: &mut dyn OutputSink,
    ) -> Result<WarmRun, DockerError> {
        let limit = spec.limits.execution_timeout;
        let mut timings = Timings::default();
        let mut outcome = ContainerOutcome {
            container_id: agent.id.clone(),
            exit_code: -1,
            timed_out: false,
            oom_killed: false,
            cancelled: false,
            outputs: Vec::new(),
            missing: Vec::new(),
            too_large: Vec::new(),
            outputs_problem: None,
            log_tail: String::new(),
            log: ContainerLog::default(),
            timings: Timings::default(),
        };
        let in_doubt = |mut outcome: ContainerOutcome, timings, why: &str| {
            outcome.timings = timings;
            Ok(WarmRun { outcome, doubt: Some(why.to_owned()) })
        };

        let clock = Instant::now();
        let order = format!(
            "uid={}\ntimeout_ms={}\nlog_max={}\nshebang={}\n",
            FIRST_RUN_UID + run,
            limit.as_millis(),
            spec.log_max_bytes,
            u8::from(spec.script.starts_with("#!"))
        );
        let sent = tokio::select! {
            sent = self.send_inputs(agent, order, spec) => sent,
            _ = cancel.cancelled() => {
                outcome.cancelled = true;
                return in_doubt(outcome, timings, "the run was cancelled");
            }
        };
        sent?;
        timings.upload = clock.elapsed();

        let clock = Instant::now();
        let status = tokio::select! {
            frame = tokio::time::timeout(limit + GRACE, self.next_frame(agent)) => match frame {
                Ok(frame) => frame?,
                Err(_) => {
                    outcome.timed_out = true;
                    return in_doubt(outcome, timings, "the agent did not end the run at its timeout");
                }
            },
            _ = cancel.cancelled() => {
                outcome.cancelled = true;
                return in_doubt(outcome, timings, "the run was cancelled");
            }
        };
        timings.wait = clock.elapsed();
        let (code, timed_out, oom) = match status {
            (kind::STATUS, text) => parse_status(&text).ok_or_else(|| {
                self.agent_broken("running a warm run", format!("a bad status {:?}", String::from_utf8_lossy(&text)))
            })?,
            (kind::FAILED, message) => {
                return Err(DockerError::Refused {
                    node: self.node.clone(),
                    message: format!(
                        "the warm container could not take the run: {} (executor.warm_disk_size bounds its inputs)",
                        String::from_utf8_lossy(&message)
                    ),
                });
            }
            (other, _) => {
                return Err(self.agent_broken("running a warm run", format!("unexpected frame {:?}", other as char)));
            }
        };
        outcome.exit_code = code;
        outcome.timed_out = timed_out;
        outcome.oom_killed = oom;
        let returned = self.expect(agent, kind::RETURNED).await?;
        outcome.log = self.read_run_log(agent).await?;
        outcome.log.bound(spec.log_max_bytes);

        let clock = Instant::now();
        let mut wanted = spec.outputs.clone();
        if !returned.is_empty() {
            match serde_json::from_slice::<container::ReturnFile>(&returned) {
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
        if too_many {
            outcome.outputs_problem = Some(format!(
                "{} outputs declared and listed in return.json, more than the {} one actor may give (executor.max_outputs)",
                wanted.len(),
                spec.max_outputs
            ));
        }
        let asked = if too_many || timed_out { Vec::new() } else { wanted.clone() };
        self.send(agent, kind::OUTPUTS, asked.join("\n").as_bytes()).await?;
        agent.input.flush().await.map_err(|e| self.agent_broken("asking for the outputs", e.to_string()))?;

        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(8);
        let pump = async {
            let mut tx = Some(tx);
            loop {
                let piece = self.expect(agent, kind::ARCHIVE).await?;
                if piece.is_empty() {
                    return Ok::<_, DockerError>(());
                }
                // Once collection stopped reading, the rest is read and dropped: the stream
                // stays in step for the next run.
                if let Some(sender) = &tx
                    && sender.send(Ok(piece)).await.is_err()
                {
                    tx = None;
                }
            }
        };
        let collect = async {
            if asked.is_empty() {
                drop(rx);
                return Ok(None);
            }
            let wanted = outputs::Wanted {
                names: asked.clone(),
                file_limit: spec.limits.output_limit,
                total_limit: spec.max_outputs_size,
            };
            let deadline = Instant::now() + limit + self.call_timeout;
            let mut rx = rx;
            let stream = outputs::archive_stream(futures::stream::poll_fn(move |cx| rx.poll_recv(cx)));
            outputs::collect(&self.node, stream, wanted, sink, cancel, deadline).await.map(Some)
        };
        let (pumped, collected) = tokio::join!(pump, collect);
        if let Some(found) = collected? {
            outcome.outputs = found.files;
            outcome.missing = found.missing;
            outcome.too_large = found.too_large;
            outcome.outputs_problem = found.stopped;
            outcome.cancelled |= found.cancelled;
        }
        pumped?;
        let done = self.expect(agent, kind::DONE).await?;
        timings.collect = clock.elapsed();

        let mut doubt = match String::from_utf8_lossy(&done).as_ref() {
            "clean" => None,
            left => Some(left.strip_prefix("left ").unwrap_or(left).to_owned()),
        };
        if timed_out {
            doubt.get_or_insert_with(|| "the run timed out".into());
        }
        if oom {
            doubt.get_or_insert_with(|| "the container ran out of memory".into());
        }
        if outcome.cancelled {
            doubt.get_or_insert_with(|| "the run was cancelled".into());
        }
        let mut log_tail = outcome.log.tail_text(spec.log_tail_lines, MAX_LOG_TAIL);
        log_tail.push_str(&outcome.log_tail);
        outcome.log_tail = log_tail;
        outcome.timings = timings;
        Ok(WarmRun { outcome, doubt })
    }

    /// The order, then the input archive in pieces, then the empty piece that ends it.
    async fn send_inputs(&self, agent: &mut WarmAgent, order: String, spec: &ContainerSpec) -> Result<(), DockerError> {
        let mut tar = archive::inputs_archive(&spec.script, &spec.inputs)
            .map_err(|e| self.agent_broken("packing inputs", e.to_string()))?;
        self.send(agent, kind::GO, order.as_bytes()).await?;
        while let Some(chunk) = tar.next().await {
            let chunk = chunk.map_err(|e| DockerError::Refused {
                node: self.node.clone(),
                message: format!("reading an input: {e}"),
            })?;
            for piece in chunk.chunks(INPUT_PIECE) {
                self.send(agent, kind::INPUT, piece).await?;
            }
        }
        self.send(agent, kind::INPUT, &[]).await?;
        agent.input.flush().await.map_err(|e| self.agent_broken("sending the inputs", e.to_string()))
    }

    async fn send(&self, agent: &mut WarmAgent, kind: u8, payload: &[u8]) -> Result<(), DockerError> {
        let mut head = [kind, 0, 0, 0, 0];
        head[1..].copy_from_slice(&(payload.len() as u32).to_le_bytes());
        let written = async {
            agent.input.write_all(&head).await?;
            agent.input.write_all(payload).await
        };
        written.await.map_err(|e| self.agent_broken("sending to the agent", e.to_string()))
    }

    /// The log lines up to the frame that ends them.
    async fn read_run_log(&self, agent: &mut WarmAgent) -> Result<ContainerLog, DockerError> {
        let mut log = ContainerLog::default();
        loop {
            match self.next_frame(agent).await? {
                (kind::LOG_LINE, line) if !line.is_empty() => log.lines.push(LogLine {
                    time: String::new(),
                    stream: if line[0] == 2 { LogStream::Stderr } else { LogStream::Stdout },
                    text: String::from_utf8_lossy(&line[1..]).into_owned(),
                }),
                (kind::LOG_END, counts) => {
                    let text = String::from_utf8_lossy(&counts).into_owned();
                    let mut numbers = text.split_whitespace().map(|n| n.parse::<i64>().unwrap_or(0));
                    log.dropped_lines = numbers.next().unwrap_or(0);
                    log.dropped_bytes = numbers.next().unwrap_or(0);
                    return Ok(log);
                }
                (other, _) => {
                    return Err(
                        self.agent_broken("reading a run's log", format!("unexpected frame {:?}", other as char))
                    );
                }
            }
        }
    }

    /// The next frame, which must be of `kind`.
    async fn expect(&self, agent: &mut WarmAgent, kind: u8) -> Result<Bytes, DockerError> {
        match self.next_frame(agent).await? {
            (found, payload) if found == kind => Ok(payload),
            (found, payload) => Err(self.agent_broken(
                "talking to the agent",
                format!(
                    "expected {:?}, got {:?} ({})",
                    kind as char,
                    found as char,
                    String::from_utf8_lossy(&payload[..payload.len().min(200)])
                ),
            )),
        }
    }

    async fn next_frame(&self, agent: &mut WarmAgent) -> Result<(u8, Bytes), DockerError> {
        loop {
            if agent.buffer.len() >= 5 {
                let len =
                    u32::from_le_bytes([agent.buffer[1], agent.buffer[2], agent.buffer[3], agent.buffer[4]]) as usize;
                if agent.buffer.len() >= 5 + len {
                    let kind = agent.buffer[0];
                    agent.buffer.advance(5);
                    return Ok((kind, agent.buffer.split_to(len).freeze()));
                }
            }
            match agent.output.next().await {
                Some(Ok(LogOutput::StdOut { message })) => agent.buffer.extend_from_slice(&message),
                Some(Ok(LogOutput::StdErr { message })) => {
                    let room = MAX_DIAGNOSTICS.saturating_sub(agent.diagnostics.len());
                    agent.diagnostics.extend_from_slice(&message[..message.len().min(room)]);
                }
                Some(Ok(_)) => {}
                Some(Err(source)) => {
                    return Err(DockerError::Engine {
                        node: self.node.clone(),
                        doing: "reading from the agent",
                        source,
                    });
                }
                None => {
                    let said = String::from_utf8_lossy(&agent.diagnostics).trim().to_owned();
                    let message = if said.is_empty() {
                        "the warm container's agent ended (is /usr/bin/runner in the image?)".to_owned()
                    } else {
                        format!("the warm container's agent ended: {said}")
                    };
                    return Err(self.agent_broken("talking to the agent", message));
                }
            }
        }
    }

    fn agent_broken(&self, doing: &'static str, message: String) -> DockerError {
        DockerError::Broken { node: self.node.clone(), doing, message }
    }
}

/// `exit <code> <timed_out> <oom>`.
fn parse_status(text: &[u8]) -> Option<(i64, bool, bool)> {
    let text = std::str::from_utf8(text).ok()?;
    match text.split_whitespace().collect::<Vec<_>>().as_slice() {
        ["exit", code, timed_out, oom] => Some((code.parse().ok()?, *timed_out == "1", *oom == "1")),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::parse_status;

    #[test]
    fn statuses_parse() {
        assert_eq!(parse_status(b"exit 3 0 1"), Some((3, false, true)));
        assert_eq!(parse_status(b"exit 137 1 0"), Some((137, true, false)));
        assert_eq!(parse_status(b"exit x 0 0"), None);
        assert_eq!(parse_status(b""), None);
    }
}
