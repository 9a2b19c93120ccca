//! libtorch's thread count follows the worker pool when a config leaves `threads` unset (its
//! own test binary: the count is process-wide, and the unit tests set it too).

use diffsamp::nn::device::configure;

#[test]
fn libtorch_threads_default_to_the_worker_pool_and_the_config_wins() {
    // 3 differs from both the unit tests' 1 and this machine's core count.
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(3)
        .build()
        .unwrap();
    // The count is read on the thread that set it, as a run does (OpenMP keeps one per thread).
    let set_and_read = |threads| {
        pool.install(|| {
            configure("cpu", threads).unwrap();
            tch::get_num_threads()
        })
    };
    assert_eq!(set_and_read(None), 3);
    assert_eq!(set_and_read(Some(1)), 1);
}
