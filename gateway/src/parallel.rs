//! CPU work of one batch spread over the machine's cores.
//!
//! The writer decides a batch's identifiers one job after the other, but the parts that do not
//! depend on each other (content digests, mappings, target validation) can run side by side.
//! Scoped threads keep borrowing simple (the batch outlives them) and cost a few microseconds
//! per batch; small inputs stay on the calling thread.

use std::num::NonZeroUsize;
use std::sync::OnceLock;

/// Below this many items per thread, another thread costs more than it saves.
pub(crate) const MIN_PER_THREAD: usize = 64;

/// The cores this process may use, asked once: `available_parallelism` reads the cgroup's CPU
/// quota from files on every call, which showed in a stream's profile when asked per batch.
fn cores() -> usize {
    static CORES: OnceLock<usize> = OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, NonZeroUsize::get))
}

fn threads_for(items: usize) -> usize {
    cores().min(items / MIN_PER_THREAD).max(1)
}

/// `items.iter().map(f)`, in parallel, in order.
pub fn map_slice<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    map_owned(items.iter().collect(), f)
}

/// `items.into_iter().map(f)`, in parallel, in order, for items that may be sent to another
/// thread but not shared with it.
pub fn map_owned<T: Send, R: Send>(items: Vec<T>, f: impl Fn(T) -> R + Sync) -> Vec<R> {
    let threads = threads_for(items.len());
    if threads == 1 {
        return items.into_iter().map(f).collect();
    }
    let per_thread = items.len().div_ceil(threads);
    let mut chunks: Vec<Vec<T>> = Vec::with_capacity(threads);
    let mut rest = items;
    while rest.len() > per_thread {
        let tail = rest.split_off(per_thread);
        chunks.push(rest);
        rest = tail;
    }
    chunks.push(rest);
    std::thread::scope(|scope| {
        let mut chunks = chunks.into_iter();
        let first = chunks.next().unwrap_or_default();
        let f = &f;
        let others: Vec<_> = chunks
            .map(|chunk| scope.spawn(move || chunk.into_iter().map(f).collect::<Vec<R>>()))
            .collect();
        let mut out: Vec<R> = first.into_iter().map(f).collect();
        for handle in others {
            match handle.join() {
                Ok(part) => out.extend(part),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        out
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_keep_the_order_of_the_items_whatever_the_split() {
        for len in [0, 1, 63, 64, 128, 129, 300, 1025] {
            let items: Vec<usize> = (0..len).collect();
            let doubled = map_slice(&items, |n| n * 2);
            assert_eq!(doubled, items.iter().map(|n| n * 2).collect::<Vec<_>>());
            let owned = map_owned(items.clone(), |n| n + 1);
            assert_eq!(owned, items.iter().map(|n| n + 1).collect::<Vec<_>>());
        }
    }
}
