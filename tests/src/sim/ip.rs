//! Pod IP allocation: every pod gets its own loopback address (Linux routes all of 127.0.0.0/8 to `lo`), so
//! trainers can bind the same port in parallel, each on `$(POD_IP)`.

use std::collections::HashSet;
use std::net::Ipv4Addr;

use anyhow::{Result, bail};

#[derive(Debug)]
pub struct IpPool {
    base: u32,
    next: u32,
    in_use: HashSet<Ipv4Addr>,
}

/// Addresses per pool: the last two octets, without .0.0 and .255.255.
const POOL_SIZE: u32 = 65_534;

impl IpPool {
    /// `base` must be a 127.a.0.0-style address; pods get base+1, base+2, ...
    pub fn new(base: Ipv4Addr) -> Result<Self> {
        if base.octets()[0] != 127 {
            bail!("pod IP base {base} is not a loopback (127.0.0.0/8) address");
        }
        if base.octets()[1] == 0 && base.octets()[2] == 0 {
            // 127.0.0.x hosts the control plane; keep pods out of its way.
            bail!("pod IP base {base} overlaps 127.0.0.0/16, which the control plane uses");
        }
        let base = u32::from(base) & 0xFFFF_0000;
        Ok(IpPool {
            base,
            next: 0,
            in_use: HashSet::new(),
        })
    }

    /// Hands out addresses round-robin, so a just-released address is not reused while a late client might still
    /// talk to it.
    pub fn allocate(&mut self) -> Option<Ipv4Addr> {
        for _ in 0..POOL_SIZE {
            self.next = self.next % POOL_SIZE + 1;
            let ip = Ipv4Addr::from(self.base + self.next);
            if self.in_use.insert(ip) {
                return Some(ip);
            }
        }
        None
    }

    pub fn release(&mut self, ip: Ipv4Addr) {
        self.in_use.remove(&ip);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocates_distinct_addresses_round_robin() {
        let mut pool = IpPool::new(Ipv4Addr::new(127, 42, 0, 0)).unwrap();
        let a = pool.allocate().unwrap();
        let b = pool.allocate().unwrap();
        assert_eq!(
            (a, b),
            (Ipv4Addr::new(127, 42, 0, 1), Ipv4Addr::new(127, 42, 0, 2))
        );
        pool.release(a);
        assert_eq!(pool.allocate(), Some(Ipv4Addr::new(127, 42, 0, 3)));
        assert!(IpPool::new(Ipv4Addr::new(10, 0, 0, 0)).is_err());
        assert!(IpPool::new(Ipv4Addr::new(127, 0, 0, 0)).is_err());
    }

    #[test]
    fn allocated_addresses_are_bindable() {
        let mut pool = IpPool::new(Ipv4Addr::new(127, 43, 0, 0)).unwrap();
        let (a, b) = (pool.allocate().unwrap(), pool.allocate().unwrap());
        // Same port on two pod IPs at once: what parallel trials rely on.
        let la = std::net::TcpListener::bind((a, 0)).expect("bind first pod IP");
        let port = la.local_addr().unwrap().port();
        std::net::TcpListener::bind((b, port)).expect("bind second pod IP on the same port");
    }
}
