//! host-local IPAM, in-process, with host-local's on-disk layout:
//!
//! ```text
//! <dataDir>/<network name>/
//!   lock                 empty file, flock()ed around every operation
//!   10.1.0.2             "<containerID>\r\n<ifname>"  (created O_EXCL, mode 0600)
//!   last_reserved_ip.0   "10.1.0.2"  (per range set; allocation continues after it)
//! ```
//!
//! so a network can move between this plugin and the reference `host-local` plugin.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use nix::fcntl::{Flock, FlockArg};

use crate::config::{IpamConf, RangeConf};
use crate::error::CniError;
use crate::result::Route;

/// The default store directory, as host-local's.
pub const DEFAULT_DATA_DIR: &str = "/var/lib/cni/networks";

/// One range of addresses inside a subnet.
#[derive(Debug, Clone, PartialEq)]
pub struct Range {
    /// The subnet (no host bits).
    pub subnet: IpNet,
    /// First address handed out.
    pub start: IpAddr,
    /// Last address handed out.
    pub end: IpAddr,
    /// The subnet's gateway (never handed out).
    pub gateway: IpAddr,
}

/// One address given to a container.
#[derive(Debug, Clone, PartialEq)]
pub struct Allocation {
    /// Address with the subnet's prefix length.
    pub address: IpNet,
    /// Gateway of its range.
    pub gateway: IpAddr,
}

/// A host-local store for one network.
#[derive(Debug, Clone)]
pub struct HostLocal {
    /// `<dataDir>/<network name>`.
    pub dir: PathBuf,
    /// Range sets; one address is allocated from each.
    pub sets: Vec<Vec<Range>>,
    /// Routes for the container.
    pub routes: Vec<Route>,
}

fn to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u32::from(v4) as u128,
        IpAddr::V6(v6) => u128::from(v6),
    }
}

fn from_u128(v: u128, v4: bool) -> IpAddr {
    if v4 {
        IpAddr::V4(Ipv4Addr::from(v as u32))
    } else {
        IpAddr::V6(Ipv6Addr::from(v))
    }
}

impl Range {
    /// Validates a range and fills host-local's defaults: gateway = first address of
    /// the subnet, start = first address, end = last address before the broadcast.
    pub fn from_conf(c: &RangeConf) -> Result<Range, CniError> {
        let subnet: IpNet = c.subnet.parse().map_err(|_| {
            CniError::InvalidConfig(format!(
                "ipam: subnet {:?} is not a CIDR: use e.g. 10.1.0.0/24",
                c.subnet
            ))
        })?;
        if subnet.addr() != subnet.network() {
            return Err(CniError::InvalidConfig(format!(
                "ipam: subnet {subnet} has host bits set: use {}",
                subnet.trunc()
            )));
        }
        let v4 = subnet.addr().is_ipv4();
        if (v4 && subnet.prefix_len() > 30) || (!v4 && subnet.prefix_len() > 126) {
            return Err(CniError::InvalidConfig(format!(
                "ipam: network {subnet} too small to allocate from: use a /30 or larger"
            )));
        }
        let net = to_u128(subnet.network());
        let last = to_u128(subnet.broadcast());
        let gateway = c.gateway.unwrap_or(from_u128(net + 1, v4));
        let start = c.range_start.unwrap_or(from_u128(net + 1, v4));
        let end = c.range_end.unwrap_or(from_u128(last - 1, v4));
        for (what, ip) in [
            ("rangeStart", start),
            ("rangeEnd", end),
            ("gateway", gateway),
        ] {
            if !subnet.contains(&ip) {
                return Err(CniError::InvalidConfig(format!(
                    "ipam: {what} {ip} is outside subnet {subnet}"
                )));
            }
        }
        if to_u128(start) > to_u128(end) {
            return Err(CniError::InvalidConfig(format!(
                "ipam: rangeStart {start} is after rangeEnd {end}"
            )));
        }
        Ok(Range {
            subnet,
            start,
            end,
            gateway,
        })
    }

    fn contains(&self, ip: IpAddr) -> bool {
        ip.is_ipv4() == self.start.is_ipv4()
            && (to_u128(self.start)..=to_u128(self.end)).contains(&to_u128(ip))
    }

    fn overlaps(&self, o: &Range) -> bool {
        self.start.is_ipv4() == o.start.is_ipv4()
            && to_u128(self.start) <= to_u128(o.end)
            && to_u128(o.start) <= to_u128(self.end)
    }
}

fn describe(set: &[Range]) -> String {
    set.iter()
        .map(|r| format!("{}-{}", r.start, r.end))
        .collect::<Vec<_>>()
        .join(",")
}

/// An exclusive lock on a network's store.
pub struct StoreLock {
    _lock: Flock<File>,
}

impl HostLocal {
    /// Builds the store from the `ipam` object (`ranges` or the legacy single-range
    /// keys; `runtimeConfig.ipRanges` replaces `ranges` when given).
    pub fn from_conf(
        net_name: &str,
        conf: &IpamConf,
        ip_ranges: Option<&Vec<Vec<RangeConf>>>,
    ) -> Result<HostLocal, CniError> {
        if conf.kind != "host-local" {
            return Err(CniError::Unsupported {
                field: format!("ipam.type={:?}", conf.kind),
                details: "netloom-cni runs host-local IPAM in-process and does not exec IPAM plugins: set \"ipam\": {\"type\": \"host-local\", ...}".into(),
            });
        }
        let raw: Vec<Vec<RangeConf>> = if let Some(r) = ip_ranges.filter(|r| !r.is_empty()) {
            r.clone()
        } else if let Some(r) = conf.ranges.clone().filter(|r| !r.is_empty()) {
            r
        } else if let Some(subnet) = &conf.subnet {
            vec![vec![RangeConf {
                subnet: subnet.clone(),
                range_start: conf.range_start,
                range_end: conf.range_end,
                gateway: conf.gateway,
            }]]
        } else {
            return Err(CniError::InvalidConfig(
                "ipam: no address ranges: set \"subnet\" or \"ranges\" in the ipam object".into(),
            ));
        };
        let mut sets = Vec::new();
        for (i, set) in raw.iter().enumerate() {
            if set.is_empty() {
                return Err(CniError::InvalidConfig(format!(
                    "ipam: range set {i} is empty"
                )));
            }
            let ranges = set
                .iter()
                .map(Range::from_conf)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| CniError::InvalidConfig(format!("invalid range set {i}: {e}")))?;
            if ranges
                .iter()
                .any(|r| r.start.is_ipv4() != ranges[0].start.is_ipv4())
            {
                return Err(CniError::InvalidConfig(format!(
                    "ipam: range set {i} mixes IPv4 and IPv6: use one range set per family"
                )));
            }
            sets.push(ranges);
        }
        let all: Vec<&Range> = sets.iter().flatten().collect();
        for (i, a) in all.iter().enumerate() {
            for b in &all[i + 1..] {
                if a.overlaps(b) {
                    return Err(CniError::InvalidConfig(format!(
                        "ipam: ranges {}-{} and {}-{} overlap",
                        a.start, a.end, b.start, b.end
                    )));
                }
            }
        }
        let data_dir = conf
            .data_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
        Ok(HostLocal {
            dir: data_dir.join(net_name),
            sets,
            routes: conf.routes.clone(),
        })
    }

    /// Takes the store's lock (creating the directory and lock file as needed).
    pub fn lock(&self) -> Result<StoreLock, CniError> {
        std::fs::create_dir_all(&self.dir).map_err(CniError::io("create directory", &self.dir))?;
        let path = self.dir.join("lock");
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&path)
            .map_err(CniError::io("open", &path))?;
        let lock = Flock::lock(f, FlockArg::LockExclusive).map_err(|(_, e)| CniError::Io {
            op: "lock",
            path: path.display().to_string(),
            source: e.into(),
        })?;
        Ok(StoreLock { _lock: lock })
    }

    /// (path, address, owner) of every reservation; with `lens`, only of files of one of
    /// those sizes (a cheap pre-filter when looking for one owner).
    fn reservations(
        &self,
        lens: Option<[u64; 2]>,
    ) -> Result<Vec<(PathBuf, IpAddr, String)>, CniError> {
        let rd = match std::fs::read_dir(&self.dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(CniError::io("read directory", &self.dir)(e)),
        };
        let mut out = Vec::new();
        for entry in rd.flatten() {
            let name = entry.file_name();
            let Some(ip) = name.to_str().and_then(|n| n.parse::<IpAddr>().ok()) else {
                continue;
            };
            if let Some(lens) = lens
                && entry.metadata().is_ok_and(|m| !lens.contains(&m.len()))
            {
                continue;
            }
            let path = entry.path();
            let content = match std::fs::read_to_string(&path) {
                Ok(c) => c,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(CniError::io("read", &path)(e)),
            };
            out.push((path, ip, content.trim().to_string()));
        }
        Ok(out)
    }

    fn owner_lens(id: &str, ifname: &str) -> Option<[u64; 2]> {
        Some([(id.len() + 2 + ifname.len()) as u64, id.len() as u64])
    }

    fn owned_by(content: &str, id: &str, ifname: &str) -> bool {
        content == format!("{id}\r\n{ifname}") || content == id
    }

    /// The addresses reserved for (`id`, `ifname`).
    pub fn owned(&self, id: &str, ifname: &str) -> Result<Vec<IpAddr>, CniError> {
        let _l = self.lock()?;
        Ok(self
            .reservations(Self::owner_lens(id, ifname))?
            .into_iter()
            .filter(|(_, _, c)| Self::owned_by(c, id, ifname))
            .map(|(_, ip, _)| ip)
            .collect())
    }

    fn reserve(&self, ip: IpAddr, id: &str, ifname: &str) -> Result<bool, CniError> {
        let path = self.dir.join(ip.to_string());
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
        {
            Ok(mut f) => {
                if let Err(e) = f.write_all(format!("{id}\r\n{ifname}").as_bytes()) {
                    // An empty reservation would belong to nobody and never be released.
                    drop(f);
                    let _ = std::fs::remove_file(&path);
                    return Err(CniError::io("write", &path)(e));
                }
                Ok(true)
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(CniError::io("create", &path)(e)),
        }
    }

    fn set_last(&self, set: usize, ip: IpAddr) -> Result<(), CniError> {
        let path = self.dir.join(format!("last_reserved_ip.{set}"));
        std::fs::write(&path, ip.to_string()).map_err(CniError::io("write", &path))
    }

    fn last(&self, set: usize) -> Option<IpAddr> {
        std::fs::read_to_string(self.dir.join(format!("last_reserved_ip.{set}")))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// Allocates one address per range set for (`id`, `ifname`): a requested address
    /// where one falls in the set, otherwise the next free one after the last
    /// reserved (round robin). All or nothing: on error nothing stays reserved.
    ///
    /// Unlike host-local, the store is not scanned for an earlier allocation of the same
    /// (`id`, `ifname`) (that scan reads every file, O(containers)): the plugin refuses
    /// a second ADD by the interface already existing, and a failed ADD releases what it
    /// took.
    pub fn allocate(
        &self,
        id: &str,
        ifname: &str,
        requested: &[IpAddr],
    ) -> Result<Vec<Allocation>, CniError> {
        let _l = self.lock()?;
        for ip in requested {
            if !self.sets.iter().flatten().any(|r| r.contains(*ip)) {
                return Err(CniError::AddressUnavailable(format!(
                    "requested IP address {ip} is not in any range of this network"
                )));
            }
        }
        let mut done: Vec<Allocation> = Vec::new();
        let res = (|| {
            for (i, set) in self.sets.iter().enumerate() {
                let a = self.allocate_in(i, set, id, ifname, requested)?;
                done.push(a);
            }
            Ok(())
        })();
        if let Err(e) = res {
            for a in &done {
                let _ = std::fs::remove_file(self.dir.join(a.address.addr().to_string()));
            }
            return Err(e);
        }
        Ok(done)
    }

    fn allocate_in(
        &self,
        i: usize,
        set: &[Range],
        id: &str,
        ifname: &str,
        requested: &[IpAddr],
    ) -> Result<Allocation, CniError> {
        let alloc = |r: &Range, ip: IpAddr| -> Result<Allocation, CniError> {
            self.set_last(i, ip)?;
            let address = IpNet::new(ip, r.subnet.prefix_len()).map_err(|_| {
                CniError::InvalidConfig(format!("ipam: bad prefix for {}", r.subnet))
            })?;
            Ok(Allocation {
                address,
                gateway: r.gateway,
            })
        };
        if let Some((ip, r)) = requested
            .iter()
            .find_map(|ip| set.iter().find(|r| r.contains(*ip)).map(|r| (*ip, r)))
        {
            if ip == r.gateway || !self.reserve(ip, id, ifname)? {
                return Err(CniError::AddressUnavailable(format!(
                    "requested IP address {ip} is not available in range set {}",
                    describe(set)
                )));
            }
            return alloc(r, ip);
        }
        let v4 = set[0].start.is_ipv4();
        // Start after the last reserved address if it lies in this set, else at the
        // start of the first range; walk every address of the set once, wrapping.
        let (mut ri, mut cur) = match self.last(i).and_then(|ip| {
            set.iter()
                .position(|r| r.contains(ip))
                .map(|p| (p, to_u128(ip)))
        }) {
            Some((p, v)) => {
                if v >= to_u128(set[p].end) {
                    ((p + 1) % set.len(), to_u128(set[(p + 1) % set.len()].start))
                } else {
                    (p, v + 1)
                }
            }
            None => (0, to_u128(set[0].start)),
        };
        let total: u128 = set
            .iter()
            .map(|r| to_u128(r.end) - to_u128(r.start) + 1)
            .fold(0u128, |a, b| a.saturating_add(b));
        let mut n: u128 = 0;
        while n < total {
            let r = &set[ri];
            let ip = from_u128(cur, v4);
            if ip != r.gateway && self.reserve(ip, id, ifname)? {
                return alloc(r, ip);
            }
            n += 1;
            if cur >= to_u128(r.end) {
                ri = (ri + 1) % set.len();
                cur = to_u128(set[ri].start);
            } else {
                cur += 1;
            }
        }
        Err(CniError::Exhausted(format!(
            "no IP addresses available in range set {}: the range is exhausted; DEL unused containers, run GC, or widen rangeStart/rangeEnd",
            describe(set)
        )))
    }

    /// Releases `ips` if they are reserved for (`id`, `ifname`) (O(1): the DEL's
    /// `prevResult` names them); returns those released.
    pub fn release_ips(
        &self,
        id: &str,
        ifname: &str,
        ips: &[IpAddr],
    ) -> Result<Vec<IpAddr>, CniError> {
        let _l = self.lock()?;
        let mut out = Vec::new();
        for ip in ips {
            let path = self.dir.join(ip.to_string());
            match std::fs::read_to_string(&path) {
                Ok(c) if Self::owned_by(c.trim(), id, ifname) => {
                    remove(&path)?;
                    out.push(*ip);
                }
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(CniError::io("read", &path)(e)),
            }
        }
        Ok(out)
    }

    /// How many range sets this store allocates from (one address each per ADD).
    pub fn set_count(&self) -> usize {
        self.sets.len()
    }

    /// True if `ip` lies in one of this store's ranges.
    pub fn in_ranges(&self, ip: IpAddr) -> bool {
        self.sets.iter().flatten().any(|r| r.contains(ip))
    }

    /// Releases every address reserved for (`id`, `ifname`) (scans the store); none is
    /// fine.
    pub fn release(&self, id: &str, ifname: &str) -> Result<Vec<IpAddr>, CniError> {
        let _l = self.lock()?;
        let mut out = Vec::new();
        for (path, ip, content) in self.reservations(Self::owner_lens(id, ifname))? {
            if Self::owned_by(&content, id, ifname) {
                remove(&path)?;
                out.push(ip);
            }
        }
        Ok(out)
    }

    /// Releases every reservation whose owner is not among `valid` (container ID,
    /// ifname); returns the addresses released. `before_release` sees them first, with
    /// the store still locked (no ADD can take them in between).
    pub fn gc(
        &self,
        valid: &[(String, String)],
        before_release: impl FnOnce(&[IpAddr]),
    ) -> Result<Vec<IpAddr>, CniError> {
        if !self.dir.exists() {
            return Ok(Vec::new());
        }
        let _l = self.lock()?;
        let stale: Vec<(PathBuf, IpAddr)> = self
            .reservations(None)?
            .into_iter()
            .filter(|(_, _, content)| {
                !valid
                    .iter()
                    .any(|(id, ifname)| Self::owned_by(content, id, ifname))
            })
            .map(|(path, ip, _)| (path, ip))
            .collect();
        let ips: Vec<IpAddr> = stale.iter().map(|(_, ip)| *ip).collect();
        before_release(&ips);
        for (path, _) in &stale {
            remove(path)?;
        }
        Ok(ips)
    }

    /// Those of `ips` reserved for (`id`, `ifname`) (O(1) each).
    pub fn owned_of(
        &self,
        id: &str,
        ifname: &str,
        ips: &[IpAddr],
    ) -> Result<Vec<IpAddr>, CniError> {
        let _l = self.lock()?;
        let mut out = Vec::new();
        for ip in ips {
            let path = self.dir.join(ip.to_string());
            match std::fs::read_to_string(&path) {
                Ok(c) if Self::owned_by(c.trim(), id, ifname) => out.push(*ip),
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(CniError::io("read", &path)(e)),
            }
        }
        Ok(out)
    }

    /// STATUS: the store directory can be created and locked.
    pub fn status(&self) -> Result<(), CniError> {
        self.lock()
            .map(|_| ())
            .map_err(|e| CniError::NotReady(format!("IPAM store not usable: {e}")))
    }
}

fn remove(path: &Path) -> Result<(), CniError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(CniError::io("remove", path)(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(dir: &Path, ranges: &str) -> HostLocal {
        let conf: IpamConf = serde_json::from_str(&format!(
            r#"{{"type":"host-local","dataDir":{:?},"ranges":{ranges}}}"#,
            dir.display().to_string()
        ))
        .unwrap();
        HostLocal::from_conf("net1", &conf, None).unwrap()
    }

    #[test]
    fn defaults_and_validation() {
        let r = Range::from_conf(&RangeConf {
            subnet: "10.1.0.0/24".into(),
            range_start: None,
            range_end: None,
            gateway: None,
        })
        .unwrap();
        assert_eq!(r.gateway.to_string(), "10.1.0.1");
        assert_eq!(r.start.to_string(), "10.1.0.1");
        assert_eq!(r.end.to_string(), "10.1.0.254");
        for (subnet, want) in [
            ("10.1.0.1/24", "host bits"),
            ("10.1.0.0/31", "too small"),
            ("nope", "not a CIDR"),
        ] {
            let e = Range::from_conf(&RangeConf {
                subnet: subnet.into(),
                range_start: None,
                range_end: None,
                gateway: None,
            })
            .unwrap_err();
            assert!(e.to_string().contains(want), "{subnet}: {e}");
        }
    }

    #[test]
    fn allocates_round_robin_skips_gateway_and_writes_host_local_files() {
        let d = tempfile::tempdir().unwrap();
        let s = store(d.path(), r#"[[{"subnet":"10.5.0.0/29"}]]"#);
        let a = s.allocate("c1", "eth0", &[]).unwrap();
        assert_eq!(a[0].address.to_string(), "10.5.0.2/29");
        assert_eq!(a[0].gateway.to_string(), "10.5.0.1");
        let dir = d.path().join("net1");
        assert_eq!(
            std::fs::read_to_string(dir.join("10.5.0.2")).unwrap(),
            "c1\r\neth0"
        );
        assert_eq!(
            std::fs::read_to_string(dir.join("last_reserved_ip.0")).unwrap(),
            "10.5.0.2"
        );
        assert!(dir.join("lock").exists());
        let mut got = vec![];
        for i in 2..=5 {
            got.push(
                s.allocate(&format!("c{i}"), "eth0", &[]).unwrap()[0]
                    .address
                    .addr(),
            );
        }
        assert_eq!(
            got.iter().map(|i| i.to_string()).collect::<Vec<_>>(),
            ["10.5.0.3", "10.5.0.4", "10.5.0.5", "10.5.0.6"]
                .map(String::from)
                .to_vec()
        );
        let e = s.allocate("c7", "eth0", &[]).unwrap_err();
        assert_eq!(e.code(), 101);
        assert!(e.to_string().contains("10.5.0.1-10.5.0.6"), "{e}");
        assert!(s.owned("c7", "eth0").unwrap().is_empty());
        // Release and reuse: round robin continues after the last reserved.
        let c3: IpAddr = "10.5.0.4".parse().unwrap();
        assert!(
            s.release_ips("c2", "eth0", &[c3]).unwrap().is_empty(),
            "not c2's"
        );
        assert_eq!(s.release_ips("c3", "eth0", &[c3]).unwrap(), vec![c3]);
        assert_eq!(s.release("c3", "eth0").unwrap().len(), 0);
        assert_eq!(s.release("c2", "eth0").unwrap().len(), 1);
        assert_eq!(
            s.allocate("c8", "eth0", &[]).unwrap()[0]
                .address
                .addr()
                .to_string(),
            "10.5.0.3"
        );
    }

    #[test]
    fn requested_ip_and_gc() {
        let d = tempfile::tempdir().unwrap();
        let s = store(
            d.path(),
            r#"[[{"subnet":"10.6.0.0/24","rangeStart":"10.6.0.10","rangeEnd":"10.6.0.20"}],[{"subnet":"fd00:6::/64"}]]"#,
        );
        let want: IpAddr = "10.6.0.15".parse().unwrap();
        let a = s.allocate("a", "eth0", &[want]).unwrap();
        assert_eq!(a.len(), 2);
        assert_eq!(a[0].address.addr(), want);
        assert_eq!(a[1].address.to_string(), "fd00:6::2/64");
        let e = s.allocate("b", "eth0", &[want]).unwrap_err();
        assert_eq!(e.code(), 102, "{e}");
        assert!(
            s.owned("b", "eth0").unwrap().is_empty(),
            "failed ADD left a reservation"
        );
        let e = s
            .allocate("b", "eth0", &["10.6.0.50".parse().unwrap()])
            .unwrap_err();
        assert_eq!(e.code(), 102);
        s.allocate("b", "eth0", &[]).unwrap();
        s.allocate("c", "eth1", &[]).unwrap();
        let freed = s.gc(&[("a".into(), "eth0".into())], |_| {}).unwrap();
        assert_eq!(freed.len(), 4);
        assert_eq!(s.owned("a", "eth0").unwrap().len(), 2);
        assert!(s.owned("b", "eth0").unwrap().is_empty());
    }

    #[test]
    fn overlapping_ranges_refused() {
        let conf: IpamConf = serde_json::from_str(
            r#"{"type":"host-local","ranges":[[{"subnet":"10.7.0.0/24"}],[{"subnet":"10.7.0.0/25"}]]}"#,
        )
        .unwrap();
        let e = HostLocal::from_conf("n", &conf, None).unwrap_err();
        assert!(e.to_string().contains("overlap"), "{e}");
        let conf: IpamConf = serde_json::from_str(r#"{"type":"dhcp"}"#).unwrap();
        assert_eq!(
            HostLocal::from_conf("n", &conf, None).unwrap_err().code(),
            2
        );
    }
}
