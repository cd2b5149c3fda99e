//! A [`Manager`] made of closures, for `create_pool("connections", spec, create)` without
//! a type of one's own.

use super::Manager;

type Create<T, E> = Box<dyn Fn() -> Result<T, E> + Send + Sync>;
type Check<T> = Box<dyn Fn(&mut T) -> bool + Send + Sync>;
type Cleanup<T> = Box<dyn Fn(T) + Send + Sync>;

/// A manager from closures: `create` is required; recycle, validate and cleanup default
/// to keep, valid and drop.
pub struct FnManager<T, E> {
    create: Create<T, E>,
    recycle: Option<Check<T>>,
    validate: Option<Check<T>>,
    cleanup: Option<Cleanup<T>>,
}

impl<T, E> FnManager<T, E> {
    /// A manager that makes objects with `create`.
    pub fn new(create: impl Fn() -> Result<T, E> + Send + Sync + 'static) -> Self {
        FnManager {
            create: Box::new(create),
            recycle: None,
            validate: None,
            cleanup: None,
        }
    }

    /// Resets a returned object; `false` discards it.
    pub fn recycle(mut self, recycle: impl Fn(&mut T) -> bool + Send + Sync + 'static) -> Self {
        self.recycle = Some(Box::new(recycle));
        self
    }

    /// Checks an object idle past `validate_after`; `false` discards it.
    pub fn validate(mut self, validate: impl Fn(&mut T) -> bool + Send + Sync + 'static) -> Self {
        self.validate = Some(Box::new(validate));
        self
    }

    /// Disposes of an object leaving the pool.
    pub fn cleanup(mut self, cleanup: impl Fn(T) + Send + Sync + 'static) -> Self {
        self.cleanup = Some(Box::new(cleanup));
        self
    }
}

impl<T, E> Manager for FnManager<T, E>
where
    T: Send + 'static,
    E: std::error::Error + Send + Sync + 'static,
{
    type Object = T;
    type Error = E;

    fn create(&self) -> Result<T, E> {
        (self.create)()
    }

    fn recycle(&self, object: &mut T) -> bool {
        self.recycle.as_ref().is_none_or(|recycle| recycle(object))
    }

    fn validate(&self, object: &mut T) -> bool {
        self.validate
            .as_ref()
            .is_none_or(|validate| validate(object))
    }

    fn cleanup(&self, object: T) {
        if let Some(cleanup) = &self.cleanup {
            cleanup(object)
        }
    }
}
