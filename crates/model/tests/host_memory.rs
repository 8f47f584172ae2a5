//! The host allocator setting, in a process of its own (it is process-wide and set once).

use model::host_memory::{current, keep_freed_blocks, mmapped_bytes, HostMemory};
use tch::{Device, Kind, Tensor};

/// A tensor of 48 MiB, above glibc's largest mmap threshold (32 MiB). Not larger: the test runs on a
/// thread of the harness, which had its own arena before the setting (a thread keeps its arena), whose
/// heaps hold at most 64 MiB; glibc maps anything larger there whatever the setting.
const ELEMENTS: i64 = 12 << 20;

fn large_tensor() -> Tensor {
    Tensor::ones([ELEMENTS], (Kind::Float, Device::Cpu))
}

#[test]
fn large_tensors_come_from_the_heap_once_freed_blocks_are_kept() {
    if std::env::var(model::host_memory::OPT_OUT).is_ok() {
        panic!("unset {} to run this test", model::host_memory::OPT_OUT);
    }
    let Some(before) = mmapped_bytes() else {
        panic!("this C library does not report its mapped blocks (glibc 2.33+ does)");
    };
    assert_eq!(current(), HostMemory::System);
    // glibc's default: a block this large is mapped on its own.
    let t = large_tensor();
    let mapped = mmapped_bytes().unwrap();
    assert!(
        mapped >= before + (48 << 20),
        "expected a 48 MiB mapping: {before} -> {mapped} bytes mapped"
    );
    drop(t);

    assert_eq!(keep_freed_blocks(), HostMemory::Kept);
    assert_eq!(current(), HostMemory::Kept);
    assert_eq!(current().name(), "kept");
    let base = mmapped_bytes().unwrap();
    let t = large_tensor();
    let after = mmapped_bytes().unwrap();
    assert_eq!(
        after, base,
        "the 48 MiB tensor was mapped, not taken from the heap"
    );
    // Freed and taken again: the same heap block, still nothing mapped.
    drop(t);
    let again = large_tensor();
    assert_eq!(mmapped_bytes().unwrap(), base);
    assert_eq!(again.sum(Kind::Double).double_value(&[]), ELEMENTS as f64);

    // A thread started after the setting shares the main arena, whose heap has no such bound: even a
    // 128 MiB tensor (what a thread arena would have mapped) comes from the heap.
    let mapped_in_thread = std::thread::spawn(|| {
        let base = mmapped_bytes().unwrap();
        let t = Tensor::ones([32 << 20], (Kind::Float, Device::Cpu));
        let after = mmapped_bytes().unwrap();
        drop(t);
        after - base
    })
    .join()
    .unwrap();
    assert_eq!(
        mapped_in_thread, 0,
        "a new thread's 128 MiB tensor was mapped"
    );
}
