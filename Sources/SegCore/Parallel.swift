import Dispatch
import Synchronization

/// A buffer that the workers of one parallel loop use at once: each writes its own disjoint
/// range, and any may read ranges that nobody writes during the loop (shared inputs).
///
/// This is the one `@unchecked Sendable` type in the code base (style rule 10). It is safe
/// only under the contract its users state next to each use: during one parallel loop, each
/// element is either only read by all workers, or written by exactly one worker (the one whose
/// output range holds it) and read by no other. The memory must outlive the loop (take it from
/// a `withUnsafeMutableBufferPointer` that encloses the loop); ``Parallel`` returns only after
/// every worker has finished, so the caller then sees all writes.
///
/// Every element access asserts its bounds in debug builds. A buffer made from a bare pointer
/// has no known length (`count == Int.max`): its user states the bounds instead.
public struct SharedBuffer<Element>: @unchecked Sendable {
  /// The first element (nil only for an empty buffer without an address).
  public let baseAddress: UnsafeMutablePointer<Element>?
  /// The number of elements, or `Int.max` when made from a bare pointer.
  public let count: Int

  // @inlinable: generic code called from every kernel module; without it each access is an
  // unspecialised cross-module call (measured: a bilinear warp ran 5× slower).
  @inlinable
  public init(_ buffer: UnsafeMutableBufferPointer<Element>) {
    baseAddress = buffer.baseAddress
    count = buffer.count
  }

  /// The elements from `base` on; their extent is the caller's contract.
  @inlinable
  public init(_ base: UnsafeMutablePointer<Element>) {
    baseAddress = base
    count = Int.max
  }

  /// Read-only elements from `base` on (only read through ``readOnly`` and the subscript).
  @inlinable
  public init(_ base: UnsafePointer<Element>) {
    baseAddress = UnsafeMutablePointer(mutating: base)
    count = Int.max
  }

  @inlinable @inline(__always)
  public subscript(i: Int) -> Element {
    get {
      assert(i >= 0 && i < count, "SharedBuffer index \(i) out of 0..<\(count)")
      return baseAddress.unsafelyUnwrapped[i]
    }
    nonmutating set {
      assert(i >= 0 && i < count, "SharedBuffer index \(i) out of 0..<\(count)")
      baseAddress.unsafelyUnwrapped[i] = newValue
    }
  }

  /// The buffer as a read-only pointer to its first element.
  @inlinable public var readOnly: UnsafePointer<Element> {
    assert(baseAddress != nil, "SharedBuffer: an empty buffer has no elements to read")
    return UnsafePointer(baseAddress.unsafelyUnwrapped)
  }

  /// A pointer `offset` elements in.
  @inlinable @inline(__always)
  public static func + (b: SharedBuffer, offset: Int) -> UnsafeMutablePointer<Element> {
    assert(offset >= 0 && offset <= b.count, "SharedBuffer offset \(offset) out of 0...\(b.count)")
    return b.baseAddress.unsafelyUnwrapped + offset
  }
}

/// How many threads the compute kernels split their work over when the caller does not say
/// (``Parallel``'s default; SegTrain's layers use it).
///
/// Every parallel loop divides an *output* into disjoint ranges and hands the ranges to this
/// many workers. (SegTrain's BLAS door pins OpenBLAS's own pool to one thread, so the two never
/// oversubscribe the cores.)
public enum ComputeThreads {
  private static let storage = Atomic<Int>(1)

  /// A per-task override (see ``withCount(_:_:)``).
  @TaskLocal static var override: Int?

  /// The current worker count (at least 1): the innermost ``withCount(_:_:)`` of the current
  /// task, else the process-wide value of ``set(_:)`` (default 1).
  public static var count: Int { override ?? storage.load(ordering: .relaxed) }

  /// Runs `body` with `n` workers for the calling task only (other tasks keep theirs), e.g. to
  /// compare results across thread counts in concurrent tests.
  public static func withCount<R>(_ n: Int, _ body: () throws -> R) rethrows -> R {
    try $override.withValue(max(1, n)) { try body() }
  }

  /// Sets the process-wide worker count. Call before training; not meant to change during a
  /// step.
  ///
  /// - Parameter n: threads, 1 or more (values below 1 mean 1).
  public static func set(_ n: Int) {
    storage.store(max(1, n), ordering: .relaxed)
  }
}

/// Parallel loops over disjoint output ranges: the one parallel-for of the code base.
public enum Parallel {
  /// Runs `body(worker, task)` for every task in `0..<tasks`, on up to `workers` threads, and
  /// returns when all are done.
  ///
  /// Tasks are handed out in order from a shared counter, so a slow core does not hold up the
  /// others; callers split work into more tasks than threads so uneven tasks balance out.
  /// `worker` is in `0..<min(workers, tasks)` and is the same for every task one thread runs,
  /// so a worker can own a private scratch buffer. Which worker runs which task varies from run
  /// to run: use this only when each task writes its own output range (see ``SharedBuffer``;
  /// the result then does not depend on the schedule). With one worker (or one task) the loop
  /// runs inline, in order.
  public static func forEach(
    tasks: Int, workers: Int = ComputeThreads.count,
    _ body: @Sendable (_ worker: Int, _ task: Int) -> Void
  ) {
    let w = min(max(1, workers), tasks)
    if w <= 1 {
      for t in 0..<max(0, tasks) { body(0, t) }
      return
    }
    let next = Atomic<Int>(0)
    DispatchQueue.concurrentPerform(iterations: w) { worker in
      while true {
        let t = next.add(1, ordering: .relaxed).oldValue
        if t >= tasks { break }
        body(worker, t)
      }
    }
  }

  /// Runs `body(worker, tasks)` once per worker, worker `w` getting the `w`-th of
  /// `min(workers, tasks)` contiguous, near-equal blocks of `0..<tasks`.
  ///
  /// The assignment is fixed, so a reduction that sums per-worker partial results in worker
  /// order is reproducible for a given worker count (floating-point sums depend on order).
  public static func forEachBlock(
    tasks: Int, workers: Int = ComputeThreads.count,
    _ body: @Sendable (_ worker: Int, _ tasks: Range<Int>) -> Void
  ) {
    let w = min(max(1, workers), tasks)
    if w <= 1 {
      if tasks > 0 { body(0, 0..<tasks) }
      return
    }
    DispatchQueue.concurrentPerform(iterations: w) { worker in
      body(worker, range(worker, of: w, count: tasks))
    }
  }

  /// Range `i` of the split of `0..<count` into `parts` nearly equal contiguous ranges (the
  /// first ones are the shorter ones; some are empty when `count < parts`).
  @inlinable @inline(__always)
  public static func range(_ i: Int, of parts: Int, count: Int) -> Range<Int> {
    (count * i / parts)..<(count * (i + 1) / parts)
  }

  /// Splits `0..<count` into at most `parts` contiguous ranges of near-equal length, each at
  /// least `minimum` long (except when `count` itself is smaller); no range is empty.
  public static func ranges(_ count: Int, parts: Int, minimum: Int = 1) -> [Range<Int>] {
    guard count > 0 else { return [] }
    let p = max(1, min(parts, count / max(1, minimum)))
    return (0..<p).map { range($0, of: p, count: count) }.filter { !$0.isEmpty }
  }
}
