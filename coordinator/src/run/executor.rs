//! The one executor of every command that runs (a run or suite, a sweep,
//! `compare`, `ab`, the bench's ceiling search): it brings up the sessions
//! the work asks for, races the work against the shutdown signal, and
//! closes every session on every path (success, error, Ctrl-C), the last
//! opened first (A/B's candidate session uses the baseline's database).

use tokio_util::sync::CancellationToken;

use super::session::Session;
use crate::error::CoordinatorError;
use crate::notice::Observer;

/// Run `work` over `sessions` (fresh ones, each opened by the work with its
/// own plan: an array for a fixed count, a `Vec` for a count the plan sets),
/// interrupted when `shutdown` is cancelled; every session is closed before
/// this returns.
pub async fn with_sessions<S: AsMut<[Session]>, T>(
    mut sessions: S,
    obs: &dyn Observer,
    shutdown: CancellationToken,
    work: impl AsyncFnOnce(&mut S) -> Result<T, CoordinatorError>,
) -> Result<T, CoordinatorError> {
    let result = tokio::select! {
        r = work(&mut sessions) => r,
        _ = shutdown.cancelled() => Err(CoordinatorError::Interrupted),
    };
    for s in sessions.as_mut().iter_mut().rev() {
        s.close(obs).await;
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Quiet;
    impl Observer for Quiet {
        fn notice(&self, _: &crate::notice::Notice<'_>) {}
    }

    #[tokio::test]
    async fn work_sees_its_sessions_and_a_cancel_interrupts_it() {
        let two = [Session::default(), Session::default()];
        let done = with_sessions(two, &Quiet, CancellationToken::new(), async |s: &mut [Session; 2]| Ok(s.len())).await;
        assert_eq!(done.expect("ran"), 2);
        let cancel = CancellationToken::new();
        cancel.cancel();
        let never = with_sessions(vec![Session::default()], &Quiet, cancel, async |_: &mut Vec<Session>| {
            std::future::pending::<()>().await;
            Ok(())
        })
        .await;
        assert!(matches!(never, Err(CoordinatorError::Interrupted)));
    }
}
