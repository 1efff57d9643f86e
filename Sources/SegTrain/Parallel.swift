import Dispatch
import Synchronization

/// How many threads SegTrain's kernels split their work over.
///
/// Every parallel loop in SegTrain divides an *output* into disjoint ranges (rows of an
/// image, output channels, chunks of pixels) and hands the ranges to this many workers;
/// each worker calls OpenBLAS single-threaded on its own range. Setting the count here also
/// pins OpenBLAS's internal pool to one thread, so the two never oversubscribe the cores.
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
    BLAS.setLibraryThreads(1)
    return try $override.withValue(max(1, n)) { try body() }
  }

  /// Sets the worker count for SegTrain's loops (and OpenBLAS's pool to one thread: SegTrain
  /// calls it from each worker). Call before training; not meant to change during a step.
  ///
  /// - Parameter n: threads, 1 or more (values below 1 mean 1).
  public static func set(_ n: Int) {
    storage.store(max(1, n), ordering: .relaxed)
    BLAS.setLibraryThreads(1)
  }
}

/// A buffer shared by the workers of one parallel loop.
///
/// This is SegTrain's only `@unchecked Sendable` type. The contract, which every use site
/// states in a comment: during one parallel loop, each element is either only read by all
/// workers, or written by exactly one worker (the one whose output range holds it) and read
/// by no other. The loop returns only after every worker has finished, so the caller sees
/// all writes.
struct SharedBuffer<Element>: @unchecked Sendable {
  let base: UnsafeMutablePointer<Element>

  init(_ base: UnsafeMutablePointer<Element>) { self.base = base }
  init(_ base: UnsafePointer<Element>) { self.base = UnsafeMutablePointer(mutating: base) }

  /// The buffer read-only.
  var readOnly: UnsafePointer<Element> { UnsafePointer(base) }

  @inline(__always)
  subscript(i: Int) -> Element {
    get { base[i] }
    nonmutating set { base[i] = newValue }
  }

  @inline(__always)
  static func + (b: SharedBuffer, offset: Int) -> UnsafeMutablePointer<Element> { b.base + offset }
}

/// Parallel loops over disjoint output ranges.
enum Parallel {
  /// Runs `body(worker, task)` for every task in `0..<tasks`, on up to `workers` threads.
  ///
  /// Tasks are handed out in order from a shared counter, so a slow core does not hold up the
  /// others. `worker` is in `0..<min(workers, tasks)` and is the same for every task one thread
  /// runs, so a worker can own a private scratch buffer. Which worker runs which task varies
  /// from run to run: use this only when each task writes its own output range (the result
  /// then does not depend on the schedule). With one worker (or one task) the loop runs inline.
  static func forEach(
    tasks: Int, workers: Int = ComputeThreads.count,
    _ body: @Sendable (_ worker: Int, _ task: Int) -> Void
  ) {
    _ = libraryPinned
    let w = min(max(1, workers), tasks)
    if w <= 1 {
      for t in 0..<tasks { body(0, t) }
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
  static func forEachBlock(
    tasks: Int, workers: Int = ComputeThreads.count,
    _ body: @Sendable (_ worker: Int, _ tasks: Range<Int>) -> Void
  ) {
    _ = libraryPinned
    let w = min(max(1, workers), tasks)
    if w <= 1 {
      if tasks > 0 { body(0, 0..<tasks) }
      return
    }
    DispatchQueue.concurrentPerform(iterations: w) { worker in
      body(worker, (tasks * worker / w)..<(tasks * (worker + 1) / w))
    }
  }

  /// Pins OpenBLAS's pool to one thread the first time a SegTrain kernel runs, in case
  /// ``ComputeThreads/set(_:)`` was never called (OpenBLAS starts with one thread per core).
  private static let libraryPinned: Bool = {
    BLAS.setLibraryThreads(1)
    return true
  }()

  /// Splits `0..<count` into at most `parts` contiguous ranges of near-equal length, each at
  /// least `minimum` long (except when `count` itself is smaller).
  static func ranges(_ count: Int, parts: Int, minimum: Int = 1) -> [Range<Int>] {
    guard count > 0 else { return [] }
    let p = max(1, min(parts, count / max(1, minimum)))
    var out: [Range<Int>] = []
    out.reserveCapacity(p)
    for i in 0..<p {
      let lo = count * i / p
      let hi = count * (i + 1) / p
      if hi > lo { out.append(lo..<hi) }
    }
    return out
  }
}
