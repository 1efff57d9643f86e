import Dispatch

/// A buffer that several threads use at once: each writes its own disjoint range, and any
/// may read ranges that nobody writes during the loop (shared inputs).
///
/// This is the one `@unchecked Sendable` type in the code base (style rule 10). It is safe
/// only under the contract its users state next to each use: every concurrent iteration
/// writes a range of indices no other iteration touches, and nobody reads a range while
/// another thread writes it. The buffer must outlive the parallel loop (take it from a
/// `withUnsafeMutableBufferPointer` that encloses the loop).
public struct DisjointWrites<Element>: @unchecked Sendable {
  public let buffer: UnsafeMutableBufferPointer<Element>

  // @inlinable: generic code called from every kernel module; without it each access is an
  // unspecialised cross-module call (measured: a bilinear warp ran 5× slower).
  @inlinable
  public init(_ buffer: UnsafeMutableBufferPointer<Element>) {
    self.buffer = buffer
  }

  @inlinable @inline(__always)
  public subscript(i: Int) -> Element {
    get {
      assert(i >= 0 && i < buffer.count, "DisjointWrites index \(i) out of 0..<\(buffer.count)")
      return buffer[i]
    }
    nonmutating set {
      assert(i >= 0 && i < buffer.count, "DisjointWrites index \(i) out of 0..<\(buffer.count)")
      buffer[i] = newValue
    }
  }

  @inlinable public var baseAddress: UnsafeMutablePointer<Element>? { buffer.baseAddress }
  @inlinable public var count: Int { buffer.count }
}

/// Runs `body(chunk)` for chunks 0..<chunks on up to `threads` threads and returns when all
/// are done. With one thread (or one chunk) it runs inline, in order.
///
/// Work is split into more chunks than threads by the callers so uneven chunks balance out;
/// `body` must only write state that no other chunk writes (see `DisjointWrites`).
public func parallelFor(chunks: Int, threads: Int, _ body: @Sendable (Int) -> Void) {
  if chunks <= 0 { return }
  if threads <= 1 || chunks == 1 {
    for c in 0..<chunks { body(c) }
    return
  }
  // concurrentPerform uses the process-wide pool; limiting to `threads` means handing each of
  // `threads` workers a strided share of the chunks.
  let workers = min(threads, chunks)
  DispatchQueue.concurrentPerform(iterations: workers) { w in
    var c = w
    while c < chunks {
      body(c)
      c += workers
    }
  }
}

/// The split of `0..<count` into `chunks` nearly equal contiguous ranges; range `i`.
@inlinable @inline(__always)
public func chunkRange(_ i: Int, of chunks: Int, count: Int) -> Range<Int> {
  let lo = count * i / chunks
  let hi = count * (i + 1) / chunks
  return lo..<hi
}

