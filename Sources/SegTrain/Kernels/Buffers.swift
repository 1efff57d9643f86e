/// A fixed-size, manually allocated float buffer with a stable address.
///
/// Activations and scratch live in these rather than in `[Float]`: a step hands raw pointers
/// into them to many kernels and worker threads, and a class with a stable allocation avoids
/// Array's exclusivity checks and copy-on-write in the hot path. Reused across steps, so a
/// training step allocates nothing once the first step has sized everything.
final class FloatBuffer {
  let pointer: UnsafeMutablePointer<Float>
  let count: Int

  init(count: Int) {
    self.count = count
    pointer = .allocate(capacity: max(count, 1))
  }

  deinit { pointer.deallocate() }

  /// Sets every element to zero.
  func zero() { pointer.update(repeating: 0, count: count) }
}

/// Scratch memory, grown on demand and reused by every layer in turn.
///
/// Layers run one after another, so one arena serves them all: a layer asks for the floats
/// it needs (typically one block per worker) and lays them out itself. The contents are
/// undefined on entry.
public final class ScratchArena {
  private var buffer: FloatBuffer?

  public init() {}

  /// At least `count` floats, valid until the next call.
  func floats(_ count: Int) -> UnsafeMutablePointer<Float> {
    let need = max(1, count)
    if let b = buffer, b.count >= need { return b.pointer }
    buffer = nil  // free the old block before allocating the larger one
    let b = FloatBuffer(count: need)
    buffer = b
    return b.pointer
  }

  /// Floats currently held.
  public var capacity: Int { buffer?.count ?? 0 }
}

/// The first element of a non-empty buffer (SegTrain never works on empty tensors).
@inline(__always)
func base(_ b: UnsafeBufferPointer<Float>) -> UnsafePointer<Float> {
  guard let p = b.baseAddress else { preconditionFailure("SegTrain: empty buffer") }
  return p
}

/// The first element of a non-empty mutable buffer.
@inline(__always)
func base(_ b: UnsafeMutableBufferPointer<Float>) -> UnsafeMutablePointer<Float> {
  guard let p = b.baseAddress else { preconditionFailure("SegTrain: empty buffer") }
  return p
}
