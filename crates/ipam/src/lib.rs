//! netloom ipam: IP address management for netloom networks.
//!
//! Pure bookkeeping, no I/O. An [`Ipam`] reserves subnets ("pools") for
//! networks, either given explicitly (`--subnet`) or carved from a list of
//! default pools ([`docker_default_pools`], or the daemon's
//! `default-address-pools`), and hands out addresses inside those pools.
//!
//! Addresses are handed out round-robin from a per-pool cursor, as Docker
//! does, so a released address is not reused at once: the cursor has to come
//! round to it again first. The cursor can be saved and restored
//! ([`Ipam::cursor`], [`Ipam::set_cursor`]) so that a daemon restart does not
//! reset it.
//!
//! Pools whose allocation range holds at most 2^24 addresses keep a bitmap
//! scanned a `u64` word at a time; bigger ones (IPv6 /64s) keep a sparse set
//! of allocated addresses, so allocation stays cheap however large the pool.
#![warn(missing_docs)]

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use serde::{Deserialize, Serialize};

/// Largest allocation range (in addresses) kept as a bitmap; bigger ranges
/// use a sparse set.
const BITMAP_MAX: u128 = 1 << 24;

/// Errors of the IPAM.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IpamError {
    /// The subnet has host bits set.
    #[error("invalid subnet {subnet}: it should be {canonical}")]
    HostBits {
        /// The subnet as given.
        subnet: IpNet,
        /// The same prefix with the host bits cleared.
        canonical: IpNet,
    },
    /// The subnet overlaps a subnet already reserved.
    #[error("subnet {subnet} overlaps with subnet {other_subnet} of network {other_owner}")]
    Overlap {
        /// The subnet requested.
        subnet: IpNet,
        /// The reserved subnet it overlaps.
        other_subnet: IpNet,
        /// The owner (network name) of `other_subnet`.
        other_owner: String,
    },
    /// The subnet is too small to hold any host address.
    #[error("subnet {subnet} is too small: it has no usable host address")]
    TooSmall {
        /// The subnet requested.
        subnet: IpNet,
    },
    /// No default pool subnet is free.
    #[error(
        "could not find an available, non-overlapping {} address pool among the defaults to assign to the network (all of {} are taken): give the network a --subnet, remove networks no longer used (network prune), or add pools to default-address-pools",
        family_of(.tried),
        list_nets(.tried)
    )]
    PoolsExhausted {
        /// The default pools that were tried, in order.
        tried: Vec<IpNet>,
    },
    /// An IPv6 subnet was requested without `--subnet` and there is no IPv6
    /// default pool.
    #[error("no default IPv6 pool, give --subnet")]
    NoDefaultV6,
    /// The IP range is not inside the subnet.
    #[error("ip range {range} is outside subnet {subnet}")]
    RangeOutside {
        /// The IP range requested.
        range: IpNet,
        /// The subnet it should be inside.
        subnet: IpNet,
    },
    /// The IP range is inside the subnet but holds no usable address.
    #[error("ip range {range} has no usable address in subnet {subnet}")]
    RangeEmpty {
        /// The IP range requested.
        range: IpNet,
        /// The subnet it is in.
        subnet: IpNet,
    },
    /// An IP range was given without a subnet.
    #[error("ip range {range} needs a subnet: give --subnet too")]
    RangeWithoutSubnet {
        /// The IP range requested.
        range: IpNet,
    },
    /// The subnet is not a reserved pool.
    #[error("subnet {subnet} is not a pool of this ipam")]
    UnknownPool {
        /// The subnet asked about.
        subnet: IpNet,
    },
    /// The requested address is not in the subnet.
    #[error("requested address {address} is out of range of subnet {subnet}")]
    OutOfRange {
        /// The address requested.
        address: IpAddr,
        /// The pool's subnet.
        subnet: IpNet,
    },
    /// The requested address is the network or broadcast address.
    #[error(
        "requested address {address} is reserved in subnet {subnet} (network or broadcast address)"
    )]
    Reserved {
        /// The address requested.
        address: IpAddr,
        /// The pool's subnet.
        subnet: IpNet,
    },
    /// The requested address is already allocated.
    #[error("address {address} is already in use in subnet {subnet}")]
    InUse {
        /// The address requested.
        address: IpAddr,
        /// The pool's subnet.
        subnet: IpNet,
    },
    /// Every address of the pool's range is allocated.
    #[error(
        "no available {} addresses on this network's address pools: subnet {subnet} is full; remove a container from the network, or use a network with a larger --subnet",
        family_of(std::slice::from_ref(subnet))
    )]
    Exhausted {
        /// The pool's subnet.
        subnet: IpNet,
    },
    /// The `default-address-pools` value is not a list of pools.
    #[error("invalid default-address-pools: {reason}")]
    InvalidDefaultPools {
        /// Why it could not be read.
        reason: String,
    },
    /// A `default-address-pools` entry is invalid.
    #[error("invalid default address pool {base} with size {size}: {reason}")]
    InvalidDefaultPool {
        /// The `base` of the entry, as written.
        base: String,
        /// The `size` of the entry.
        size: u8,
        /// What is wrong with it.
        reason: String,
    },
}

/// `IPv4` or `IPv6`: the family of the first of `nets` (IPv4 when empty).
fn family_of(nets: &[IpNet]) -> &'static str {
    match nets.first() {
        Some(IpNet::V6(_)) => "IPv6",
        _ => "IPv4",
    }
}

fn list_nets(nets: &[IpNet]) -> String {
    if nets.is_empty() {
        return "none".to_string();
    }
    nets.iter()
        .map(|n| n.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Address family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// IPv4.
    V4,
    /// IPv6.
    V6,
}

impl Family {
    fn of(net: &IpNet) -> Family {
        match net {
            IpNet::V4(_) => Family::V4,
            IpNet::V6(_) => Family::V6,
        }
    }

    fn bits(self) -> u8 {
        match self {
            Family::V4 => 32,
            Family::V6 => 128,
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        })
    }
}

/// One default pool: a base network split into subnets of `size` prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DefaultPool {
    /// The base network, e.g. `192.168.0.0/16`.
    pub base: IpNet,
    /// Prefix length of the subnets carved from `base`, e.g. 20.
    pub size: u8,
}

/// Docker's local defaults: 172.17.0.0/16, 172.18.0.0/16, 172.19.0.0/16,
/// 172.20.0.0/14→/16, 172.24.0.0/14→/16, 172.28.0.0/14→/16,
/// 192.168.0.0/16→/20 (31 subnets in that order).
pub fn docker_default_pools() -> Vec<DefaultPool> {
    let v4 = |a: u8, b: u8, prefix: u8, size: u8| DefaultPool {
        base: IpNet::V4(Ipv4Net::new_assert(Ipv4Addr::new(a, b, 0, 0), prefix)),
        size,
    };
    vec![
        v4(172, 17, 16, 16),
        v4(172, 18, 16, 16),
        v4(172, 19, 16, 16),
        v4(172, 20, 14, 16),
        v4(172, 24, 14, 16),
        v4(172, 28, 14, 16),
        v4(192, 168, 16, 20),
    ]
}

/// One entry of the daemon.json `default-address-pools` list, as written:
/// `{"base":"10.10.0.0/16","size":24}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DefaultPoolConfig {
    /// The base network, e.g. `"10.10.0.0/16"`.
    pub base: String,
    /// Prefix length of the subnets carved from `base`.
    pub size: u8,
}

impl DefaultPoolConfig {
    /// Checks the entry: `base` a network without host bits, `size` at
    /// least the base prefix and at most 32 (IPv4) or 128 (IPv6).
    pub fn validate(&self) -> Result<DefaultPool, IpamError> {
        let invalid = |reason: String| IpamError::InvalidDefaultPool {
            base: self.base.clone(),
            size: self.size,
            reason,
        };
        let base: IpNet = self
            .base
            .trim()
            .parse()
            .map_err(|_| invalid("base is not a network in CIDR form".to_string()))?;
        if base.trunc() != base {
            return Err(invalid(format!(
                "base has host bits set, it should be {}",
                base.trunc()
            )));
        }
        if self.size < base.prefix_len() {
            return Err(invalid(format!(
                "size must be at least the base prefix length {}",
                base.prefix_len()
            )));
        }
        if self.size > base.max_prefix_len() {
            return Err(invalid(format!(
                "size must be at most {}",
                base.max_prefix_len()
            )));
        }
        Ok(DefaultPool {
            base,
            size: self.size,
        })
    }
}

/// Parses and validates the daemon.json `default-address-pools` value, a
/// JSON list like `[{"base":"10.10.0.0/16","size":24}]`, into default pools.
pub fn parse_default_pools(json: &str) -> Result<Vec<DefaultPool>, IpamError> {
    let entries: Vec<DefaultPoolConfig> =
        serde_json::from_str(json).map_err(|e| IpamError::InvalidDefaultPools {
            reason: e.to_string(),
        })?;
    default_pools_from_config(&entries)
}

/// Validates daemon.json `default-address-pools` entries into default pools,
/// keeping their order.
pub fn default_pools_from_config(
    entries: &[DefaultPoolConfig],
) -> Result<Vec<DefaultPool>, IpamError> {
    entries.iter().map(DefaultPoolConfig::validate).collect()
}

/// First usable host address of a subnet (the default gateway: .1 / ::1).
///
/// `None` when the subnet holds no host (IPv4 /31 and /32, IPv6 /127 and
/// /128).
pub fn first_host(subnet: &IpNet) -> Option<IpAddr> {
    let subnet = subnet.trunc();
    let (lo, hi) = host_bounds(&subnet)?;
    (lo <= hi).then(|| addr_at(&subnet, lo))
}

/// The net's address as an integer.
fn addr_u128(addr: IpAddr) -> u128 {
    match addr {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

/// Offset of the last address of the net (size - 1).
fn last_offset(net: &IpNet) -> u128 {
    let host_bits = u32::from(net.max_prefix_len() - net.prefix_len());
    if host_bits >= 128 {
        u128::MAX
    } else {
        (1u128 << host_bits) - 1
    }
}

/// Usable host offsets `[lo, hi]` of a subnet, or `None` when it is too small
/// to hold any host.
fn host_bounds(subnet: &IpNet) -> Option<(u128, u128)> {
    let last = last_offset(subnet);
    match subnet {
        // network and broadcast reserved
        IpNet::V4(_) => (last >= 3).then(|| (1, last - 1)),
        // network (subnet-router anycast) reserved
        IpNet::V6(_) => (last >= 3).then_some((1, last)),
    }
}

/// The address at `offset` from the network address of `net`.
fn addr_at(net: &IpNet, offset: u128) -> IpAddr {
    let value = addr_u128(net.network()).wrapping_add(offset);
    match net {
        // offsets inside a v4 net never exceed 32 bits
        IpNet::V4(_) => IpAddr::V4(Ipv4Addr::from(value as u32)),
        IpNet::V6(_) => IpAddr::V6(Ipv6Addr::from(value)),
    }
}

/// Offset of `addr` within `net`, `None` when outside it.
fn offset_of(net: &IpNet, addr: IpAddr) -> Option<u128> {
    net.contains(&addr)
        .then(|| addr_u128(addr) - addr_u128(net.network()))
}

fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// The net of `prefix` length at integer address `value` of `family`.
fn net_at(family: Family, value: u128, prefix: u8) -> Option<IpNet> {
    match family {
        Family::V4 => {
            let v = u32::try_from(value).ok()?;
            Ipv4Net::new(Ipv4Addr::from(v), prefix).ok().map(IpNet::V4)
        }
        Family::V6 => Ipv6Net::new(Ipv6Addr::from(value), prefix)
            .ok()
            .map(IpNet::V6),
    }
}

/// The allocation state of one pool's range.
#[derive(Debug, Clone)]
enum Slots {
    /// Bit `i` set = range offset `i` allocated.
    Bitmap(Vec<u64>),
    /// Range offsets allocated.
    Sparse(HashSet<u128>),
}

impl Slots {
    fn new(len: u128, bitmap_max: u128) -> Slots {
        if len <= bitmap_max.min(BITMAP_MAX) {
            // len <= 2^24, fits usize
            let words = len.div_ceil(64) as usize;
            Slots::Bitmap(vec![0; words])
        } else {
            Slots::Sparse(HashSet::new())
        }
    }

    /// Whether range offset `i` is allocated.
    fn get(&self, i: u128) -> bool {
        match self {
            Slots::Bitmap(words) => {
                let (w, b) = ((i / 64) as usize, i % 64);
                words.get(w).is_some_and(|word| word & (1 << b) != 0)
            }
            Slots::Sparse(set) => set.contains(&i),
        }
    }

    /// Marks range offset `i`; returns whether it changed.
    fn set(&mut self, i: u128, on: bool) -> bool {
        match self {
            Slots::Bitmap(words) => {
                let (w, b) = ((i / 64) as usize, i % 64);
                let Some(word) = words.get_mut(w) else {
                    return false;
                };
                let was = *word & (1 << b) != 0;
                if on {
                    *word |= 1 << b;
                } else {
                    *word &= !(1 << b);
                }
                was != on
            }
            Slots::Sparse(set) => {
                if on {
                    set.insert(i)
                } else {
                    set.remove(&i)
                }
            }
        }
    }

    /// First free range offset in `[from, to]`, scanning forward.
    fn first_free(&self, from: u128, to: u128) -> Option<u128> {
        if from > to {
            return None;
        }
        match self {
            Slots::Bitmap(words) => {
                let (first_word, last_word) = ((from / 64) as usize, (to / 64) as usize);
                for w in first_word..=last_word {
                    let mut mask = u64::MAX;
                    if w == first_word {
                        mask &= u64::MAX << (from % 64);
                    }
                    if w == last_word {
                        mask &= u64::MAX >> (63 - to % 64);
                    }
                    let free = !words.get(w).copied().unwrap_or(u64::MAX) & mask;
                    if free != 0 {
                        return Some(w as u128 * 64 + u128::from(free.trailing_zeros()));
                    }
                }
                None
            }
            Slots::Sparse(set) => {
                let mut i = from;
                loop {
                    if !set.contains(&i) {
                        return Some(i);
                    }
                    if i == to {
                        return None;
                    }
                    i += 1;
                }
            }
        }
    }
}

/// One reserved subnet and its allocations.
#[derive(Debug, Clone)]
struct Pool {
    owner: String,
    subnet: IpNet,
    /// Subnet offset of the first address of the allocation range.
    lo: u128,
    /// Subnet offset of the last address of the allocation range.
    hi: u128,
    /// Allocated addresses inside `[lo, hi]`, indexed by `offset - lo`.
    slots: Slots,
    /// How many addresses of `[lo, hi]` are allocated.
    in_range: u128,
    /// Allocated addresses of the subnet outside `[lo, hi]` (pinned).
    outside: HashSet<u128>,
    /// Subnet offset of the next address to try, in `[lo, hi]`.
    cursor: u128,
}

impl Pool {
    fn range_len(&self) -> u128 {
        // hi - lo < u128::MAX always (network address excluded)
        self.hi - self.lo + 1
    }

    fn is_allocated(&self, offset: u128) -> bool {
        if (self.lo..=self.hi).contains(&offset) {
            self.slots.get(offset - self.lo)
        } else {
            self.outside.contains(&offset)
        }
    }

    fn mark(&mut self, offset: u128, on: bool) {
        if (self.lo..=self.hi).contains(&offset) {
            if self.slots.set(offset - self.lo, on) {
                if on {
                    self.in_range += 1;
                } else {
                    self.in_range -= 1;
                }
            }
        } else if on {
            self.outside.insert(offset);
        } else {
            self.outside.remove(&offset);
        }
    }

    /// Next free offset from the cursor, wrapping once; moves the cursor past it.
    fn next_free(&mut self) -> Option<u128> {
        if self.in_range >= self.range_len() {
            return None;
        }
        let len = self.range_len();
        let cur = self.cursor.saturating_sub(self.lo).min(len - 1);
        let found = self.slots.first_free(cur, len - 1).or_else(|| {
            cur.checked_sub(1)
                .and_then(|end| self.slots.first_free(0, end))
        })?;
        self.slots.set(found, true);
        self.in_range += 1;
        let offset = self.lo + found;
        self.cursor = if offset >= self.hi {
            self.lo
        } else {
            offset + 1
        };
        Some(offset)
    }
}

/// The IP address manager: reserved subnets and their allocated addresses.
#[derive(Debug, Clone)]
pub struct Ipam {
    default_pools: Vec<DefaultPool>,
    pools: BTreeMap<IpNet, Pool>,
    /// Largest range kept as a bitmap (lowered by tests to exercise the
    /// sparse set).
    bitmap_max: u128,
}

impl Ipam {
    /// An IPAM with the given default pools (used when no subnet is given).
    ///
    /// Entries that cannot be split (size shorter than the base prefix or
    /// longer than the address) are ignored; validate user input with
    /// [`default_pools_from_config`] first.
    pub fn new(default_pools: Vec<DefaultPool>) -> Self {
        Ipam {
            default_pools: default_pools
                .into_iter()
                .map(|p| DefaultPool {
                    base: p.base.trunc(),
                    size: p.size,
                })
                .collect(),
            pools: BTreeMap::new(),
            bitmap_max: BITMAP_MAX,
        }
    }

    /// Test hook: keep ranges longer than `max` as sparse sets.
    #[cfg(test)]
    fn with_bitmap_max(mut self, max: u128) -> Self {
        self.bitmap_max = max;
        self
    }

    /// Reserve a subnet for `owner` (a network name, used in error messages).
    ///
    /// With `subnet` given it must be a network (no host bits), big enough to
    /// hold a host, and overlap no reserved pool. Without it, the first
    /// IPv4 default-pool subnet that overlaps neither a reserved pool nor any
    /// of `avoid` (host routes etc.) is taken; see
    /// [`Ipam::request_default_pool`] for IPv6. `ip_range`, if given, must be
    /// inside the subnet and limits where [`Ipam::request_address`] picks
    /// addresses by itself.
    pub fn request_pool(
        &mut self,
        owner: &str,
        subnet: Option<IpNet>,
        ip_range: Option<IpNet>,
        avoid: &[IpNet],
    ) -> Result<IpNet, IpamError> {
        let Some(subnet) = subnet else {
            if let Some(range) = ip_range {
                return Err(IpamError::RangeWithoutSubnet { range });
            }
            return self.request_default_pool(owner, Family::V4, avoid);
        };
        let canonical = subnet.trunc();
        if canonical != subnet {
            return Err(IpamError::HostBits { subnet, canonical });
        }
        let (host_lo, host_hi) = host_bounds(&subnet).ok_or(IpamError::TooSmall { subnet })?;
        let (lo, hi) = match ip_range {
            None => (host_lo, host_hi),
            Some(range) => {
                let range_net = range.trunc();
                if range_net != range {
                    return Err(IpamError::HostBits {
                        subnet: range,
                        canonical: range_net,
                    });
                }
                if Family::of(&range) != Family::of(&subnet)
                    || !subnet.contains(&range_net.network())
                    || range_net.prefix_len() < subnet.prefix_len()
                {
                    return Err(IpamError::RangeOutside { range, subnet });
                }
                let start = offset_of(&subnet, range_net.network())
                    .ok_or(IpamError::RangeOutside { range, subnet })?;
                let end = start + last_offset(&range_net);
                let (lo, hi) = (start.max(host_lo), end.min(host_hi));
                if lo > hi {
                    return Err(IpamError::RangeEmpty { range, subnet });
                }
                (lo, hi)
            }
        };
        if let Some(other) = self.pools.values().find(|p| overlaps(&p.subnet, &subnet)) {
            return Err(IpamError::Overlap {
                subnet,
                other_subnet: other.subnet,
                other_owner: other.owner.clone(),
            });
        }
        self.insert_pool(owner, subnet, lo, hi);
        Ok(subnet)
    }

    /// Reserve the first default-pool subnet of `family` that overlaps
    /// neither a reserved pool nor any of `avoid`, for `owner`.
    ///
    /// IPv6 needs an IPv6 entry in the default pools (from
    /// `default-address-pools`); otherwise the caller must give a subnet.
    pub fn request_default_pool(
        &mut self,
        owner: &str,
        family: Family,
        avoid: &[IpNet],
    ) -> Result<IpNet, IpamError> {
        let candidates: Vec<DefaultPool> = self
            .default_pools
            .iter()
            .filter(|p| Family::of(&p.base) == family)
            .copied()
            .collect();
        if candidates.is_empty() && family == Family::V6 {
            return Err(IpamError::NoDefaultV6);
        }
        let mut blockers: Vec<IpNet> = self
            .pools
            .keys()
            .copied()
            .chain(avoid.iter().map(IpNet::trunc))
            .filter(|n| Family::of(n) == family)
            .collect();
        blockers.sort();
        for pool in &candidates {
            if let Some(subnet) = first_free_subnet(pool, &blockers)
                && let Some((lo, hi)) = host_bounds(&subnet)
            {
                self.insert_pool(owner, subnet, lo, hi);
                return Ok(subnet);
            }
        }
        Err(IpamError::PoolsExhausted {
            tried: candidates.iter().map(|p| p.base).collect(),
        })
    }

    fn insert_pool(&mut self, owner: &str, subnet: IpNet, lo: u128, hi: u128) {
        let pool = Pool {
            owner: owner.to_string(),
            subnet,
            lo,
            hi,
            slots: Slots::new(hi - lo + 1, self.bitmap_max),
            in_range: 0,
            outside: HashSet::new(),
            cursor: lo,
        };
        self.pools.insert(subnet, pool);
    }

    /// Releases a subnet and every address allocated in it. Releasing an
    /// unknown subnet does nothing.
    pub fn release_pool(&mut self, subnet: &IpNet) {
        self.pools.remove(&subnet.trunc());
    }

    /// Allocates an address in the pool `subnet`.
    ///
    /// With `addr` given, exactly that address is taken: it must be in the
    /// subnet (it may be outside the pool's ip range, as Docker allows), not
    /// its network or (IPv4) broadcast address, and not allocated already.
    /// Without it, the next free address of the ip range (or the subnet) is
    /// taken, round-robin from the pool's cursor, so a released address is
    /// reused only after the pool has cycled. Pinning an address does not
    /// move the cursor.
    pub fn request_address(
        &mut self,
        subnet: &IpNet,
        addr: Option<IpAddr>,
    ) -> Result<IpAddr, IpamError> {
        let key = subnet.trunc();
        let pool = self
            .pools
            .get_mut(&key)
            .ok_or(IpamError::UnknownPool { subnet: *subnet })?;
        let subnet = pool.subnet;
        match addr {
            None => pool
                .next_free()
                .map(|offset| addr_at(&subnet, offset))
                .ok_or(IpamError::Exhausted { subnet }),
            Some(address) => {
                let offset =
                    offset_of(&subnet, address).ok_or(IpamError::OutOfRange { address, subnet })?;
                let (host_lo, host_hi) =
                    host_bounds(&subnet).ok_or(IpamError::TooSmall { subnet })?;
                if offset < host_lo || offset > host_hi {
                    return Err(IpamError::Reserved { address, subnet });
                }
                if pool.is_allocated(offset) {
                    return Err(IpamError::InUse { address, subnet });
                }
                pool.mark(offset, true);
                Ok(address)
            }
        }
    }

    /// Releases an address of the pool `subnet`. Releasing an address that
    /// is not allocated (or of an unknown pool) does nothing.
    pub fn release_address(&mut self, subnet: &IpNet, addr: IpAddr) {
        if let Some(pool) = self.pools.get_mut(&subnet.trunc())
            && let Some(offset) = offset_of(&pool.subnet, addr)
        {
            pool.mark(offset, false);
        }
    }

    /// Whether `addr` is allocated in the pool `subnet`.
    pub fn is_allocated(&self, subnet: &IpNet, addr: IpAddr) -> bool {
        self.pools.get(&subnet.trunc()).is_some_and(|pool| {
            offset_of(&pool.subnet, addr).is_some_and(|offset| pool.is_allocated(offset))
        })
    }

    /// Number of addresses allocated in the pool `subnet` (0 for an unknown
    /// pool).
    pub fn allocated_count(&self, subnet: &IpNet) -> usize {
        self.pools.get(&subnet.trunc()).map_or(0, |pool| {
            usize::try_from(pool.in_range)
                .unwrap_or(usize::MAX)
                .saturating_add(pool.outside.len())
        })
    }

    /// The pool's cursor: the offset, from the subnet's network address, of
    /// the next address [`Ipam::request_address`] tries. `None` for an
    /// unknown pool.
    ///
    /// The daemon stores it with the network and restores it after a restart
    /// (then re-marks every live address with `request_address(Some(..))`),
    /// so a restart does not cause instant reuse.
    pub fn cursor(&self, subnet: &IpNet) -> Option<u128> {
        self.pools.get(&subnet.trunc()).map(|pool| pool.cursor)
    }

    /// Restores a pool's cursor saved with [`Ipam::cursor`]. A cursor outside
    /// the pool's range restarts at the range's start; an unknown pool is
    /// ignored.
    pub fn set_cursor(&mut self, subnet: &IpNet, cursor: u128) {
        if let Some(pool) = self.pools.get_mut(&subnet.trunc()) {
            pool.cursor = if (pool.lo..=pool.hi).contains(&cursor) {
                cursor
            } else {
                pool.lo
            };
        }
    }

    /// The reserved subnets with their owners, sorted by subnet.
    pub fn pools(&self) -> Vec<(IpNet, String)> {
        self.pools
            .values()
            .map(|p| (p.subnet, p.owner.clone()))
            .collect()
    }
}

/// First subnet of `pool` overlapping none of `blockers` (same family).
///
/// Each rejected candidate skips past the blocker it hit, so the work is
/// bounded by the number of blockers, not the number of candidates.
fn first_free_subnet(pool: &DefaultPool, blockers: &[IpNet]) -> Option<IpNet> {
    let family = Family::of(&pool.base);
    if pool.size < pool.base.prefix_len() || pool.size > family.bits() {
        return None;
    }
    let base_start = addr_u128(pool.base.network());
    let base_end = base_start.checked_add(last_offset(&pool.base))?;
    let step = 1u128.checked_shl(u32::from(family.bits() - pool.size));
    let mut at = base_start;
    loop {
        let candidate = net_at(family, at, pool.size)?;
        let Some(blocker) = blockers.iter().find(|b| overlaps(b, &candidate)) else {
            return Some(candidate);
        };
        let next = if blocker.prefix_len() <= pool.size {
            // the blocker covers the candidate: jump past the blocker
            addr_u128(blocker.network())
                .checked_add(last_offset(blocker))?
                .checked_add(1)?
        } else {
            at.checked_add(step?)?
        };
        if next > base_end {
            return None;
        }
        at = next;
    }
}

#[cfg(test)]
mod tests;
