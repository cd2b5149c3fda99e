//! The pool manager: the supervised owner of the runtime's named resource pools.
//!
//! It owns the [`Pools`] registry (kept outside the actor, so the pools, their objects and
//! their statistics survive its restart, as the file cache's store survives the cache
//! actor's) and runs their upkeep every `pools.maintenance_interval_ms`: reaping idle and
//! old objects, refilling `min_idle`, scanning for leaks and autoscaling, on the blocking
//! pool (refills make objects, which may block). It answers [`CreatePool`],
//! [`ResizePool`] and [`RemovePool`] from `Subsystems` (host applications, the admin
//! routes, later the tuner) and [`MaintainPools`] from tests. Reads (`/admin/pools`,
//! metrics, the profiler) go to the registry directly, never through the mailbox, and no
//! acquire ever sends a message.
//!
//! On restart a new incarnation resumes the upkeep of the same registry.

use std::time::Duration;

use actix::prelude::*;

use crate::codec::{Codecs, GzipManager, InflateManager, Levels};
use crate::config::keys::{BUFFER_POOL, GZIP_POOL, INFLATE_POOL};
use crate::config::{BUILTIN_POOLS, PoolOpts};
use crate::off::Off;
use crate::pool::{MaintainReport, Manager, Pool, PoolError, PoolSpec, PoolStats, Pools, Resize};
use crate::templates::render::{BufferManager, Resources};

/// Makes a pool of `manager`'s objects and registers it; answers the pool.
pub struct CreatePool<M: Manager> {
    pub name: String,
    pub spec: PoolSpec,
    pub manager: M,
}

impl<M: Manager> Message for CreatePool<M> {
    type Result = Result<Pool<M>, PoolError>;
}

/// Changes a pool's limits; `by` names who asked (`admin`, `tuner`, `api`).
#[derive(Message)]
#[rtype(result = "Result<PoolStats, PoolError>")]
pub struct ResizePool {
    pub name: String,
    pub resize: Resize,
    pub by: String,
}

/// Closes and unregisters a pool (not one of leanserve's own).
#[derive(Message)]
#[rtype(result = "Result<(), PoolError>")]
pub struct RemovePool {
    pub name: String,
}

/// Runs one round of upkeep now and answers what it did per pool.
#[derive(Message)]
#[rtype(result = "Vec<(String, MaintainReport)>")]
pub struct MaintainPools;

/// The pool manager actor (see the module docs).
pub struct PoolManager {
    pools: Pools,
    interval: Duration,
    /// An upkeep round is running on the blocking pool.
    maintaining: bool,
}

impl PoolManager {
    /// A manager of `pools`, maintaining them every `interval`.
    pub fn new(pools: Pools, interval: Duration) -> Self {
        PoolManager {
            pools,
            interval,
            maintaining: false,
        }
    }

    fn tick(&mut self, ctx: &mut Context<Self>) {
        if self.maintaining {
            return;
        }
        self.maintaining = true;
        let pools = self.pools.clone();
        let task = actix_rt::task::spawn_blocking(move || pools.maintain_all());
        ctx.spawn(task.into_actor(self).map(|result, manager, _| {
            manager.maintaining = false;
            if let Err(error) = result {
                log::error!("pool upkeep failed: {error}");
            }
        }));
    }
}

impl Actor for PoolManager {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        log::info!(
            "pool manager: {} pool(s) ({}), upkeep every {:?}",
            self.pools.names().len(),
            self.pools.names().join(", "),
            self.interval
        );
        ctx.run_interval(self.interval, |manager, ctx| manager.tick(ctx));
    }
}

impl<M: Manager> Handler<CreatePool<M>> for PoolManager {
    type Result = ResponseFuture<Result<Pool<M>, PoolError>>;

    /// Answers once `min_idle` objects are made (on the blocking pool).
    fn handle(&mut self, message: CreatePool<M>, _: &mut Context<Self>) -> Self::Result {
        let created = self
            .pools
            .create(&message.name, message.spec.clone(), message.manager);
        Box::pin(async move {
            let pool = created?;
            log::info!("pool `{}` created: {:?}", message.name, message.spec);
            if message.spec.min_idle > 0 {
                let filling = pool.clone();
                let _ = actix_rt::task::spawn_blocking(move || filling.maintain()).await;
            }
            Ok(pool)
        })
    }
}

/// Resizing and removing run the pool's `cleanup` on the objects it lets go of, which
/// for a host's pool may block (closing a connection): they run on the blocking pool,
/// like upkeep, not on the thread the actors share.
async fn off_the_actor_thread<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, PoolError> + Send + 'static,
) -> Result<T, PoolError> {
    actix_rt::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|join| Err(PoolError::Unavailable(join.to_string())))
}

impl Handler<ResizePool> for PoolManager {
    type Result = ResponseFuture<Result<PoolStats, PoolError>>;

    fn handle(&mut self, message: ResizePool, _: &mut Context<Self>) -> Self::Result {
        let pools = self.pools.clone();
        Box::pin(async move {
            let ResizePool { name, resize, by } = message;
            let stats = {
                let (name, by) = (name.clone(), by.clone());
                off_the_actor_thread(move || pools.resize(&name, &resize, &by)).await?
            };
            log::info!(
                "pool `{name}` resized by {by}: max_size {}, min_idle {}, scale {}..={}",
                stats.max_size,
                stats.spec.min_idle,
                stats.spec.scale_min,
                stats.spec.scale_max
            );
            Ok(stats)
        })
    }
}

impl Handler<RemovePool> for PoolManager {
    type Result = ResponseFuture<Result<(), PoolError>>;

    fn handle(&mut self, message: RemovePool, _: &mut Context<Self>) -> Self::Result {
        let pools = self.pools.clone();
        Box::pin(async move {
            let name = message.name;
            if BUILTIN_POOLS.contains(&name.as_str()) {
                return Err(PoolError::Protected { name });
            }
            let removing = name.clone();
            off_the_actor_thread(move || pools.remove(&removing)).await?;
            log::info!("pool `{name}` removed");
            Ok(())
        })
    }
}

impl Handler<MaintainPools> for PoolManager {
    type Result = ResponseFuture<Vec<(String, MaintainReport)>>;

    fn handle(&mut self, _: MaintainPools, _: &mut Context<Self>) -> Self::Result {
        let pools = self.pools.clone();
        Box::pin(async move {
            actix_rt::task::spawn_blocking(move || pools.maintain_all())
                .await
                .unwrap_or_default()
        })
    }
}

/// The pools as the runtime holds them: the registry, and the manager that changes it
/// (`None` with `pools.enabled = false`, when every change answers `PoolError::Off`).
#[derive(Clone)]
pub(crate) struct PoolsHandle {
    registry: Pools,
    manager: Option<crate::supervisor::Handle<PoolManager>>,
}

impl PoolsHandle {
    /// With `opts.enabled`: the registry with leanserve's own pools in it (compressors
    /// and inflaters for `codecs`, render buffers), the `pool_manager` child that keeps
    /// them, and those pools as the file cache's and the renders' resources, storing at
    /// `levels`. Off: an empty registry, no child, and codecs that make their state per
    /// use.
    pub(crate) fn start(
        opts: &PoolOpts,
        levels: Levels,
    ) -> Result<(Option<crate::supervisor::ChildSpec>, PoolsHandle, Resources), PoolError> {
        let registry = Pools::new();
        if !opts.enabled {
            let resources = Resources {
                codecs: Codecs::direct().storing_at(levels),
                buffers: None,
            };
            let handle = PoolsHandle {
                registry,
                manager: None,
            };
            return Ok((None, handle, resources));
        }
        let gzip = registry.create(GZIP_POOL, opts.spec(GZIP_POOL), GzipManager)?;
        let inflate = registry.create(INFLATE_POOL, opts.spec(INFLATE_POOL), InflateManager)?;
        let buffers = registry.create(BUFFER_POOL, opts.spec(BUFFER_POOL), BufferManager)?;
        let resources = Resources {
            codecs: Codecs::pooled(gzip, inflate).storing_at(levels),
            buffers: Some(buffers),
        };
        let (kept, interval) = (registry.clone(), opts.maintenance_interval);
        let (spec, manager) = crate::supervisor::ChildSpec::worker("pool_manager", move || {
            PoolManager::new(kept.clone(), interval)
        });
        let handle = PoolsHandle {
            registry,
            manager: Some(manager),
        };
        Ok((Some(spec), handle, resources))
    }

    /// The registry: reads of every pool without a message.
    pub(crate) fn registry(&self) -> &Pools {
        &self.registry
    }

    fn manager(&self) -> Result<&crate::supervisor::Handle<PoolManager>, PoolError> {
        self.manager.as_ref().ok_or(PoolError::Off(Off::Pools))
    }

    /// Makes and registers a pool of `manager`'s objects.
    pub(crate) async fn create<M: Manager>(
        &self,
        name: &str,
        spec: PoolSpec,
        manager: M,
    ) -> Result<Pool<M>, PoolError> {
        let create = CreatePool {
            name: name.to_owned(),
            spec,
            manager,
        };
        self.manager()?.send(create).await.map_err(unavailable)?
    }

    /// The pool named `name`, typed.
    pub(crate) fn get<M: Manager>(&self, name: &str) -> Result<Pool<M>, PoolError> {
        self.manager()?;
        self.registry.get(name)
    }

    /// Changes a pool's limits; `by` names who asks.
    pub(crate) async fn resize(
        &self,
        name: &str,
        resize: Resize,
        by: &str,
    ) -> Result<PoolStats, PoolError> {
        let resize = ResizePool {
            name: name.to_owned(),
            resize,
            by: by.to_owned(),
        };
        self.manager()?.send(resize).await.map_err(unavailable)?
    }

    /// Closes and removes a host's pool.
    pub(crate) async fn remove(&self, name: &str) -> Result<(), PoolError> {
        let remove = RemovePool {
            name: name.to_owned(),
        };
        self.manager()?.send(remove).await.map_err(unavailable)?
    }

    /// Runs one round of upkeep now.
    pub(crate) async fn maintain(&self) -> Result<Vec<(String, MaintainReport)>, PoolError> {
        self.manager()?
            .send(MaintainPools)
            .await
            .map_err(unavailable)
    }
}

/// The manager did not answer: the pool call is unavailable, not failed.
fn unavailable(error: crate::supervisor::CallError) -> PoolError {
    PoolError::Unavailable(error.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pool::FnManager;

    #[derive(Debug, thiserror::Error)]
    #[error("never")]
    struct Never;

    #[actix_rt::test]
    async fn pool_manager_creates_resizes_and_removes_pools_by_message() {
        let pools = Pools::new();
        let manager = PoolManager::new(pools.clone(), Duration::from_secs(3600)).start();
        let pool = manager
            .send(CreatePool {
                name: "numbers".into(),
                spec: PoolSpec::new(2).min_idle(1),
                manager: FnManager::new(|| Ok::<u32, Never>(7)),
            })
            .await
            .unwrap()
            .unwrap();
        assert_eq!(pool.stats().idle, 1, "min_idle is made before the answer");
        assert_eq!(*pool.try_acquire().unwrap(), 7);
        let stats = manager
            .send(ResizePool {
                name: "numbers".into(),
                resize: Resize {
                    max_size: Some(4),
                    ..Resize::default()
                },
                by: "admin".into(),
            })
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stats.max_size, 4);
        assert!(matches!(
            manager
                .send(RemovePool {
                    name: "gzip".into()
                })
                .await
                .unwrap(),
            Err(PoolError::Protected { .. })
        ));
        manager
            .send(RemovePool {
                name: "numbers".into(),
            })
            .await
            .unwrap()
            .unwrap();
        assert!(pools.names().is_empty());
        assert!(pool.try_acquire().is_err(), "a removed pool is closed");
    }
}
