//! What a flood of logins may cost: password hashes are computed by a fixed set of threads
//! (one per core) behind a short queue, and each client address gets a few attempts a minute.
//!
//! An Argon2 hash takes a core and about 19 MiB for tens of milliseconds. Without a ceiling,
//! every login posted at once holds its own 19 MiB, so a flood of them grows the process
//! without bound. Here at most `threads` hashes run, at most `queue` wait, and any login
//! beyond that is answered at once ("busy, try again in a second") instead of waiting.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

/// A job for a hashing thread.
type Job = Box<dyn FnOnce() + Send>;

/// Why a hash was not computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HashRefused {
    /// Every hashing thread is busy and the queue is full: try again shortly.
    Busy,
    /// The hashing thread stopped (it panicked); nothing was computed.
    Failed,
}

/// The password hashing threads and their bounded queue.
#[derive(Debug)]
pub(crate) struct HashPool {
    jobs: Mutex<SyncSender<Job>>,
    /// Logins admitted and not finished, at most `threads + queue`.
    admitted: Arc<AtomicUsize>,
    capacity: usize,
}

/// A login's turn at the hashing threads, taken before any other work on it (dropped when
/// the login is done).
#[derive(Debug)]
pub(crate) struct Admission(Arc<AtomicUsize>);

impl Drop for Admission {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl HashPool {
    /// `threads` hashing threads (at least one) and room for `queue` waiting hashes.
    pub(crate) fn new(threads: usize, queue: usize) -> Self {
        let threads = threads.max(1);
        let (tx, rx) = sync_channel::<Job>(queue);
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..threads {
            let rx = Arc::clone(&rx);
            let spawned = std::thread::Builder::new()
                .name(format!("password-hash-{i}"))
                .spawn(move || work(&rx));
            if let Err(e) = spawned {
                tracing::error!(error = %e, "could not start a password hashing thread");
            }
        }
        Self {
            jobs: Mutex::new(tx),
            admitted: Arc::new(AtomicUsize::new(0)),
            capacity: threads + queue,
        }
    }

    /// A turn for one more login, or `Busy` at once when as many are admitted as the threads
    /// and the queue can take: a login that would be refused costs nothing more (no database
    /// query, no hash).
    pub(crate) fn admit(&self) -> Result<Admission, HashRefused> {
        self.admitted
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.capacity).then_some(n + 1)
            })
            .map(|_| Admission(Arc::clone(&self.admitted)))
            .map_err(|_| HashRefused::Busy)
    }

    /// Run `f` (a password hash or check) on a hashing thread, or refuse at once when the
    /// threads are busy and the queue is full.
    pub(crate) async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, HashRefused> {
        self.submit(f)?.await.map_err(|_| HashRefused::Failed)
    }

    /// Queue `f` for a hashing thread (refused when the queue is full); its result comes on
    /// the receiver. A job whose receiver is gone by the time its turn comes is skipped.
    fn submit<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<oneshot::Receiver<T>, HashRefused> {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move || {
            if !tx.is_closed() {
                let _ = tx.send(f());
            }
        });
        let jobs = self.jobs.lock().map_err(|_| HashRefused::Failed)?;
        match jobs.try_send(job) {
            Ok(()) => Ok(rx),
            Err(TrySendError::Full(_)) => Err(HashRefused::Busy),
            Err(TrySendError::Disconnected(_)) => Err(HashRefused::Failed),
        }
    }
}

fn work(jobs: &Mutex<Receiver<Job>>) {
    loop {
        // The lock is held only while taking a job, never while running one.
        let job = match jobs.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        match job {
            Ok(job) => job(),
            // The pool is gone: nothing more will come.
            Err(_) => return,
        }
    }
}

/// Login attempts per client address: a token bucket per address, in a table of bounded
/// size (when it is full, the address seen longest ago is forgotten).
#[derive(Debug)]
pub(crate) struct ClientLimits {
    clients: Mutex<HashMap<IpAddr, Bucket>>,
    per_minute: u32,
    burst: u32,
    tracked: usize,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

impl ClientLimits {
    /// `per_minute` attempts a minute per address after a first `burst`; at most `tracked`
    /// addresses remembered.
    pub(crate) fn new(per_minute: u32, burst: u32, tracked: usize) -> Self {
        Self {
            clients: Mutex::new(HashMap::new()),
            per_minute: per_minute.max(1),
            burst: burst.max(1),
            tracked: tracked.max(1),
        }
    }

    /// Take one attempt for `client`, or say how long until it has one.
    pub(crate) fn attempt(&self, client: IpAddr, now: Instant) -> Result<(), Duration> {
        let key = client_key(client);
        let rate = f64::from(self.per_minute) / 60.0;
        let burst = f64::from(self.burst);
        let Ok(mut clients) = self.clients.lock() else {
            return Ok(());
        };
        if !clients.contains_key(&key) && clients.len() >= self.tracked {
            let oldest = clients
                .iter()
                .min_by_key(|(_, b)| b.updated)
                .map(|(k, _)| *k);
            if let Some(k) = oldest {
                clients.remove(&k);
            }
        }
        let b = clients.entry(key).or_insert(Bucket {
            tokens: burst,
            updated: now,
        });
        let elapsed = now.saturating_duration_since(b.updated).as_secs_f64();
        b.tokens = (b.tokens + elapsed * rate).min(burst);
        b.updated = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - b.tokens) / rate))
        }
    }

    /// Addresses remembered now.
    #[cfg(test)]
    fn tracked_now(&self) -> usize {
        self.clients.lock().map(|c| c.len()).unwrap_or(0)
    }
}

/// The key of a client: its IPv4 address, or the /64 network of an IPv6 one (one host
/// usually has a whole /64 to pick addresses from).
fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn a_client_gets_its_burst_then_one_attempt_per_refill() {
        let limits = ClientLimits::new(10, 10, 100);
        let t0 = Instant::now();
        for _ in 0..10 {
            assert_eq!(limits.attempt(ip("10.0.0.1"), t0), Ok(()));
        }
        let wait = limits.attempt(ip("10.0.0.1"), t0).err();
        assert_eq!(
            wait.map(|w| w.as_secs()),
            Some(6),
            "10 a minute: one every 6 s"
        );
        // Another address is not affected; after 6 s one more attempt is allowed.
        assert_eq!(limits.attempt(ip("10.0.0.2"), t0), Ok(()));
        let later = t0 + Duration::from_secs(6);
        assert_eq!(limits.attempt(ip("10.0.0.1"), later), Ok(()));
        assert!(limits.attempt(ip("10.0.0.1"), later).is_err());
    }

    #[test]
    fn the_table_of_clients_stays_within_its_size_forgetting_the_oldest() {
        let limits = ClientLimits::new(10, 1, 50);
        let t0 = Instant::now();
        for i in 0..1000u32 {
            let addr = IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            let _ = limits.attempt(addr, t0 + Duration::from_millis(u64::from(i)));
        }
        assert_eq!(limits.tracked_now(), 50);
        // The most recent addresses are still limited; the first was forgotten.
        let last = IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + 999));
        assert!(limits.attempt(last, t0 + Duration::from_secs(1)).is_err());
        let first = IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000));
        assert!(limits.attempt(first, t0 + Duration::from_secs(1)).is_ok());
    }

    #[test]
    fn ipv6_clients_are_limited_by_their_network() {
        let limits = ClientLimits::new(10, 1, 50);
        let t0 = Instant::now();
        assert!(limits.attempt(ip("2001:db8:1:2::1"), t0).is_ok());
        assert!(limits.attempt(ip("2001:db8:1:2::ffff"), t0).is_err());
        assert!(limits.attempt(ip("2001:db8:1:3::1"), t0).is_ok());
        assert!(limits.attempt(ip("::ffff:10.1.1.1"), t0).is_ok());
        assert!(limits.attempt(ip("10.1.1.1"), t0).is_err());
    }

    #[tokio::test]
    async fn hashes_beyond_the_threads_and_queue_are_refused_at_once() {
        let pool = HashPool::new(1, 2);
        let (started_tx, started) = std::sync::mpsc::channel::<()>();
        let (release, wait) = std::sync::mpsc::channel::<()>();
        // One job holds the only thread until released...
        let first = pool
            .submit(move || {
                let _ = started_tx.send(());
                wait.recv().is_ok()
            })
            .unwrap_or_else(|e| panic!("{e:?}"));
        assert!(started.recv_timeout(Duration::from_secs(10)).is_ok());
        // ...two more fill the queue, and the next is refused without waiting.
        let queued: Vec<_> = (0..2)
            .map(|i| pool.submit(move || i).unwrap_or_else(|e| panic!("{e:?}")))
            .collect();
        assert_eq!(pool.submit(|| 9).err(), Some(HashRefused::Busy));
        let _ = release.send(());
        assert_eq!(first.await.ok(), Some(true));
        for (i, q) in queued.into_iter().enumerate() {
            assert_eq!(q.await.ok(), Some(i));
        }
        assert_eq!(pool.run(|| 7).await, Ok(7));
    }

    #[test]
    fn logins_are_admitted_up_to_threads_plus_queue() {
        let pool = HashPool::new(1, 2);
        let turns: Vec<_> = (0..3).filter_map(|_| pool.admit().ok()).collect();
        assert_eq!(turns.len(), 3);
        assert_eq!(pool.admit().err(), Some(HashRefused::Busy));
        drop(turns);
        assert!(pool.admit().is_ok());
    }
}
