//! Hostile actors and the verdict each must get, fresh or warm: the node stays healthy.

use wharf::model::limitation::Limitation;

pub struct HostileCase {
    pub name: &'static str,
    pub body: &'static str,
    pub outputs: &'static [&'static str],
    pub limitation: Option<Limitation>,
    /// How the verdict (the report's exception) starts.
    pub verdict: &'static str,
}

fn limited(f: fn(&mut Limitation)) -> Option<Limitation> {
    let mut limitation = Limitation { execution_timeout: Some(3000), ..Limitation::default() };
    f(&mut limitation);
    Some(limitation)
}

pub fn hostile_cases() -> Vec<HostileCase> {
    vec![
        HostileCase {
            name: "memory-bomb",
            body: "dd if=/dev/zero of=/dev/null bs=200M count=1",
            outputs: &[],
            limitation: limited(|l| l.memory = Some(64 << 20)),
            verdict: "killed: out of memory (limit 64 MiB)",
        },
        HostileCase {
            name: "fork-bomb",
            body: "bomb() { bomb | bomb & }; bomb; sleep 30",
            outputs: &[],
            limitation: limited(|l| l.pids_limit = Some(64)),
            verdict: "timed out after 3000 ms",
        },
        HostileCase {
            name: "infinite-loop",
            body: "while :; do :; done",
            outputs: &[],
            limitation: limited(|l| l.execution_timeout = Some(1500)),
            verdict: "timed out after 1500 ms",
        },
        HostileCase {
            name: "network",
            body: "ls /sys/class/net\nwget -q -T 2 -O /dev/null http://wharf.invalid/",
            outputs: &[],
            limitation: limited(|_| {}),
            verdict: "exited with code 1",
        },
        HostileCase {
            name: "huge-output",
            body: "dd if=/dev/zero of=big.out bs=1M count=64",
            outputs: &["big.out"],
            limitation: limited(|l| l.output_limit = Some(8 << 20)),
            verdict: "killed: a file grew past the output limit of 8388608 bytes",
        },
        HostileCase {
            name: "missing-output",
            body: "echo no file here",
            outputs: &["result.txt"],
            limitation: limited(|_| {}),
            verdict: "output result.txt missing",
        },
        HostileCase {
            name: "exit-code",
            body: "echo failing >&2; exit 3",
            outputs: &[],
            limitation: limited(|_| {}),
            verdict: "exited with code 3",
        },
    ]
}
