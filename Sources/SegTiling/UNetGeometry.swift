/// Convolution padding of a U-Net.
public enum UNetPadding: String, Sendable, Codable, CaseIterable {
  /// Unpadded 3 × 3 convolutions (the paper): every convolution loses a 1-pixel border, so the
  /// output is smaller than the input (572 → 388 for depth 4).
  case valid
  /// Zero-padded convolutions: output size = input size.
  case same
}

/// Size arithmetic of a U-Net with `depth` poolings and two 3 × 3 convolutions per level
/// (Ronneberger, Fischer & Brox 2015, doi:10.1007/978-3-319-24574-4_28).
///
/// For `valid` padding, an input size n is legal when every level's size before a 2 × 2
/// pooling is even (so pooling and the up-convolution invert each other exactly) and the
/// bottom level keeps a positive size; the output is then
/// o = n − 4·(2^(d+1) − 1) − … computed level by level below. The context margin
/// (n − o)/2 is what overlap-tiling has to supply on each side (92 px for depth 4).
public struct UNetGeometry: Sendable, Equatable, Codable {
  public var depth: Int
  public var padding: UNetPadding

  public init(depth: Int = 4, padding: UNetPadding = .valid) {
    precondition(depth >= 0 && depth <= 12, "U-Net depth \(depth) out of 0...12")
    self.depth = depth
    self.padding = padding
  }

  /// The output size for an input size, or nil when the input is not legal.
  public func outputSize(forInput n: Int) -> Int? {
    guard n > 0 else { return nil }
    switch padding {
    case .same:
      return n % (1 << depth) == 0 ? n : nil
    case .valid:
      var size = n
      for _ in 0..<depth {
        size -= 4
        guard size > 0, size % 2 == 0 else { return nil }
        size /= 2
      }
      size -= 4  // bottom level
      guard size > 0 else { return nil }
      for _ in 0..<depth {
        size = size * 2 - 4
        guard size > 0 else { return nil }
      }
      return size
    }
  }

  /// Whether `n` is a legal input size.
  public func isLegalInput(_ n: Int) -> Bool { outputSize(forInput: n) != nil }

  /// The legal input sizes up to `limit`, ascending.
  public func legalInputs(upTo limit: Int) -> [Int] {
    (1...max(limit, 1)).filter(isLegalInput)
  }

  /// The smallest legal input whose output is at least `n` pixels, with that output.
  public func nearestInput(forOutputAtLeast n: Int) -> (input: Int, output: Int) {
    var candidate = max(1, n)
    while true {
      if let out = outputSize(forInput: candidate), out >= n { return (candidate, out) }
      candidate += 1
    }
  }

  /// The input size that gives exactly `output`, if there is one.
  public func inputSize(forOutput output: Int) -> Int? {
    switch padding {
    case .same: return output % (1 << depth) == 0 ? output : nil
    case .valid:
      // Invert level by level: up path, bottom, down path.
      var size = output
      for _ in 0..<depth {
        guard (size + 4) % 2 == 0 else { return nil }
        size = (size + 4) / 2
      }
      size += 4
      for _ in 0..<depth { size = size * 2 + 4 }
      return outputSize(forInput: size) == output ? size : nil
    }
  }

  /// Pixels of context each side of an output tile: (input − output) / 2 for a legal input
  /// (the same for every legal input of a valid network; 0 for same padding).
  public var contextMargin: Int {
    switch padding {
    case .same: return 0
    case .valid:
      let (input, output) = nearestInput(forOutputAtLeast: 1)
      return (input - output) / 2
    }
  }
}
