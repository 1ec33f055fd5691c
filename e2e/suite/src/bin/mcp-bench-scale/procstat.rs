//! The operator process as the kernel accounts it: CPU seconds (user + system)
//! and resident memory, read from /proc.
use anyhow::{Context as _, Result};
use std::process::Command;

pub struct Proc {
    pid: u32,
    ticks_per_s: f64,
}

#[derive(Clone, Copy, Debug, Default)]
pub struct Sample {
    pub cpu_s: f64,
    pub rss_mib: f64,
    /// The kernel's high-water mark of RSS since the process started.
    pub hwm_mib: f64,
}

impl Proc {
    pub fn new(pid: u32) -> Result<Self> {
        Ok(Self {
            pid,
            ticks_per_s: ticks_per_s()?,
        })
    }

    pub fn sample(&self) -> Result<Sample> {
        let rest = stat_fields(self.pid)
            .with_context(|| format!("operator process {} is gone", self.pid))?;
        let f: Vec<&str> = rest.split_whitespace().collect();
        // A zombie (killed, e.g. by the OOM killer, and not yet reaped) still
        // has a stat file, with nothing resident.
        if matches!(f.first(), Some(&"Z") | Some(&"X")) {
            anyhow::bail!("operator process {} exited", self.pid);
        }
        let cpu_s = cpu_of(&f, self.ticks_per_s)?;
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid))?;
        let kib = |key: &str| -> f64 {
            status
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        Ok(Sample {
            cpu_s,
            rss_mib: kib("VmRSS:") / 1024.0,
            hwm_mib: kib("VmHWM:") / 1024.0,
        })
    }
}

/// CPU seconds (user + system) `pid` has used so far.
pub fn cpu_s(pid: u32, ticks_per_s: f64) -> Result<f64> {
    let rest = stat_fields(pid)?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    cpu_of(&f, ticks_per_s)
}

/// utime + stime from the fields of [`stat_fields`]: fields 14 and 15 of the
/// whole line, 11 and 12 from the state on.
fn cpu_of(f: &[&str], ticks_per_s: f64) -> Result<f64> {
    let tick =
        |i: usize| -> Result<f64> { Ok(f.get(i).context("short /proc/pid/stat")?.parse::<f64>()?) };
    Ok((tick(11)? + tick(12)?) / ticks_per_s)
}

/// The machine's CPU seconds so far, all cores: (busy, busy + idle). Busy is
/// user, nice, system, irq, softirq and steal; idle counts iowait.
pub fn machine_cpu_s(ticks_per_s: f64) -> Result<(f64, f64)> {
    let stat = std::fs::read_to_string("/proc/stat")?;
    let line = stat
        .lines()
        .find(|l| l.starts_with("cpu "))
        .context("/proc/stat without a cpu line")?;
    let t: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .map(|v| v.parse::<f64>())
        .collect::<Result<_, _>>()?;
    anyhow::ensure!(t.len() == 8, "short cpu line in /proc/stat");
    let busy = t[0] + t[1] + t[2] + t[5] + t[6] + t[7];
    Ok((busy / ticks_per_s, (busy + t[3] + t[4]) / ticks_per_s))
}

/// Ticks per second of /proc's CPU times.
pub fn ticks_per_s() -> Result<f64> {
    let out = Command::new("getconf").arg("CLK_TCK").output()?;
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .context("getconf CLK_TCK")
}

/// `/proc/PID/stat` from its third field (the state) on: the command name
/// before it may hold spaces and ')'.
fn stat_fields(pid: u32) -> Result<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let (_, rest) = stat
        .rsplit_once(')')
        .context("/proc/pid/stat without ')'")?;
    Ok(rest.to_owned())
}

/// The process running `exe` in the tree under `root` (root itself when it
/// does): a profiler (heaptrack, perf) wraps the operator in processes of its
/// own, and the figures are the operator's, not the wrapper's.
pub fn find_in_tree(root: u32, exe: &std::path::Path) -> Option<u32> {
    let exe = std::fs::canonicalize(exe).ok()?;
    let mut parents = Vec::new();
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let ppid = stat_fields(pid)
            .ok()
            .and_then(|rest| rest.split_whitespace().nth(1)?.parse::<u32>().ok());
        if let Some(ppid) = ppid {
            parents.push((pid, ppid));
        }
    }
    let mut tree = vec![root];
    let mut i = 0;
    while let Some(&p) = tree.get(i) {
        tree.extend(parents.iter().filter(|(_, pp)| *pp == p).map(|(c, _)| *c));
        i += 1;
    }
    tree.into_iter()
        .find(|p| std::fs::read_link(format!("/proc/{p}/exe")).is_ok_and(|e| e == exe))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Our own CPU grows with work; the machine's busy time is within its total.
    #[test]
    fn cpu_times_read_from_proc() -> Result<()> {
        let ticks = ticks_per_s()?;
        let before = cpu_s(std::process::id(), ticks)?;
        let (busy0, all0) = machine_cpu_s(ticks)?;
        let t = std::time::Instant::now();
        let mut x = 0u64;
        while t.elapsed() < std::time::Duration::from_millis(300) {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        }
        std::hint::black_box(x);
        let after = cpu_s(std::process::id(), ticks)?;
        let (busy1, all1) = machine_cpu_s(ticks)?;
        assert!(after - before >= 0.1, "{before} -> {after}");
        assert!(busy1 - busy0 >= 0.1 && busy1 - busy0 <= all1 - all0 + 0.02);
        assert!(cpu_s(u32::MAX, ticks).is_err(), "no such process");
        Ok(())
    }

    /// A wrapper's child is found by its executable and sampled as itself.
    #[test]
    fn finds_the_wrapped_process() -> Result<()> {
        let sleep = std::path::Path::new("/usr/bin/sleep");
        // `; true` keeps the shell alive as the wrapper around sleep
        let mut sh = std::process::Command::new("sh")
            .args(["-c", "/usr/bin/sleep 5; true"])
            .spawn()?;
        let root = sh.id();
        let mut found = None;
        for _ in 0..50 {
            found = find_in_tree(root, sleep);
            if found.is_some() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let checked = (|| -> Result<()> {
            let pid = found.context("sleep not found under its shell")?;
            assert_ne!(pid, root, "the shell is not the wrapped process");
            assert!(Proc::new(pid)?.sample()?.rss_mib > 0.0);
            assert_eq!(
                find_in_tree(root, std::path::Path::new("/nonexistent")),
                None
            );
            Ok(())
        })();
        let _ = sh.kill();
        let _ = sh.wait();
        checked
    }
}
