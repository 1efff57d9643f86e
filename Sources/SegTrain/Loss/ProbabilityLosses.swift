#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// One head's probabilities and their targets, as the probability-based loss terms see them.
///
/// P is N × K × H × W (NCHW). The foreground maps are the channels `foreground`; channel c
/// stands for class c + `classOffset` (a sigmoid head: one channel for class 1, offset 1; a
/// softmax head: channels 1 ..< K, offset 0). T_c = [target = class of c] per pixel.
struct ProbabilityMaps {
  let p: UnsafePointer<Float>
  let shape: TensorShape
  let foreground: Range<Int>
  let classOffset: Int
  /// N × H × W class ids.
  let targets: UnsafePointer<Int32>
  /// N × H × W pixel weights, or nil for 1.
  let weights: UnsafePointer<Float>?

  /// The class channel c stands for.
  @inline(__always) func classOf(_ c: Int) -> Int32 { Int32(c + classOffset) }

  /// T for channel c at pixel i of item n.
  @inline(__always) func target(_ n: Int, _ c: Int, _ i: Int) -> Float {
    targets[n * shape.plane + i] == classOf(c) ? 1 : 0
  }
}

/// Probability-based loss terms (each a mean, so heads of any size weigh alike). Every term
/// returns its value and adds `scale`·∂term/∂P into `dp` (N × K × H × W, same layout as P).
///
/// Clamping follows the UNet 3+ reference (../shared/bench/peers.py, `unet3p_loss`):
/// p = clamp(P, 1e−6, 1 − 1e−6) inside logarithms, with no gradient where the clamp is active
/// (PyTorch's clamp). Sums are accumulated in Double per plane and added in plane order.
enum ProbabilityLoss {
  static let epsilon: Float = 1e-6

  /// Focal loss (Lin et al. 2017, doi:10.1109/ICCV.2017.324) per foreground map, the mean over
  /// the N·F·H·W values of −α·T·(1−p)^γ·log p − (1−α)·(1−T)·p^γ·log(1−p).
  static func focal(_ m: ProbabilityMaps, alpha: Float, gamma: Float, scale: Float, dp: UnsafeMutablePointer<Float>) -> Double {
    let s = m.shape
    let count = Double(s.n * m.foreground.count * s.plane)
    let g = Float(Double(scale) / count)
    var total = 0.0
    for n in 0..<s.n {
      for c in m.foreground {
        let off = n * s.item + c * s.plane
        let pp = m.p + off, d = dp + off
        var sum = 0.0
        for i in 0..<s.plane {
          let raw = pp[i]
          let p = min(max(raw, epsilon), 1 - epsilon)
          let inside: Float = raw > epsilon && raw < 1 - epsilon ? 1 : 0
          if m.target(n, c, i) > 0 {
            let q = 1 - p
            let lp = logf(p)
            sum += Double(-alpha * powf(q, gamma) * lp)
            // d/dp [−α q^γ log p] = α (γ q^(γ−1) log p − q^γ / p)
            d[i] += inside * g * alpha * (gamma * powf(q, gamma - 1) * lp - powf(q, gamma) / p)
          } else {
            let lq = logf(1 - p)
            sum += Double(-(1 - alpha) * powf(p, gamma) * lq)
            // d/dp [−(1−α) p^γ log(1−p)] = −(1−α) (γ p^(γ−1) log(1−p) − p^γ/(1−p))
            d[i] += inside * g * -(1 - alpha) * (gamma * powf(p, gamma - 1) * lq - powf(p, gamma) / (1 - p))
          }
        }
        total += sum
      }
    }
    return total / count
  }

  /// Soft Jaccard loss per image and foreground map, averaged: 1 − ΣPT/(ΣP + ΣT − ΣPT) (no
  /// smoothing, as the reference). A map whose prediction and target are both empty (union 0)
  /// counts 0, with no gradient (the reference would give 0/0).
  static func iou(_ m: ProbabilityMaps, scale: Float, dp: UnsafeMutablePointer<Float>) -> Double {
    let s = m.shape
    let maps = Double(s.n * m.foreground.count)
    var total = 0.0
    for n in 0..<s.n {
      for c in m.foreground {
        let off = n * s.item + c * s.plane
        let pp = m.p + off, d = dp + off
        var inter = 0.0, sumP = 0.0, sumT = 0.0
        for i in 0..<s.plane {
          let t = Double(m.target(n, c, i))
          inter += Double(pp[i]) * t
          sumP += Double(pp[i])
          sumT += t
        }
        let union = sumP + sumT - inter
        guard union > 0 else { continue }
        total += 1 - inter / union
        // dI/dP_i = T_i and dU/dP_i = 1 − T_i, so dL/dP_i = −(T_i·U − I·(1 − T_i))/U²: −1/U on
        // the target, I/U² off it (per map; then the mean over the maps).
        let k = Double(scale) / maps / (union * union)
        let onTarget = Float(-k * union), offTarget = Float(k * inter)
        for i in 0..<s.plane { d[i] += m.target(n, c, i) > 0 ? onTarget : offTarget }
      }
    }
    return total / maps
  }

  /// Soft Dice loss over the batch per foreground map, averaged over the maps:
  /// 1 − (1/F)·Σ_c (2·ΣPT + ε)/(ΣP + ΣT + ε).
  static func dice(_ m: ProbabilityMaps, smoothing: Float, scale: Float, dp: UnsafeMutablePointer<Float>) -> Double {
    let s = m.shape
    let eps = Double(smoothing)
    let f = Double(m.foreground.count)
    var mean = 0.0
    for c in m.foreground {
      var inter = 0.0, union = 0.0
      for n in 0..<s.n {
        let pp = m.p + n * s.item + c * s.plane
        for i in 0..<s.plane {
          let t = Double(m.target(n, c, i))
          inter += Double(pp[i]) * t
          union += Double(pp[i]) + t
        }
      }
      let ratio = (2 * inter + eps) / (union + eps)
      mean += ratio / f
      // d(−ratio/F)/dP_i = −(2T_i·(U + ε) − (2I + ε))/(U + ε)² / F
      let a = Float(-Double(scale) * 2 / (union + eps) / f)
      let b = Float(Double(scale) * (2 * inter + eps) / ((union + eps) * (union + eps)) / f)
      for n in 0..<s.n {
        let d = dp + n * s.item + c * s.plane
        for i in 0..<s.plane { d[i] += (m.target(n, c, i) > 0 ? a : 0) + b }
      }
    }
    return 1 - mean
  }

  /// Cross-entropy on probabilities, weighted per pixel, the mean over the N·H·W pixels: for a
  /// sigmoid head (one channel) the binary −w·[T·log p + (1−T)·log(1−p)], else −w·log p_T.
  static func crossEntropy(_ m: ProbabilityMaps, scale: Float, dp: UnsafeMutablePointer<Float>) -> Double {
    let s = m.shape
    let pixels = Double(s.n * s.plane)
    let g = Float(Double(scale) / pixels)
    var total = 0.0
    for n in 0..<s.n {
      var sum = 0.0
      for i in 0..<s.plane {
        let w = m.weights?[n * s.plane + i] ?? 1
        let target = Int(m.targets[n * s.plane + i])
        let channel: Int
        let positive: Bool
        if s.c == 1 {
          channel = 0
          positive = Int32(target) == m.classOf(0)
        } else {
          precondition(target >= 0 && target < s.c, "ProbabilityLoss: target class \(target) outside 0..<\(s.c)")
          channel = target
          positive = true
        }
        let j = n * s.item + channel * s.plane + i
        let raw = m.p[j]
        let p = min(max(raw, epsilon), 1 - epsilon)
        let inside: Float = raw > epsilon && raw < 1 - epsilon ? 1 : 0
        if positive {
          sum -= Double(w * logf(p))
          dp[j] -= inside * g * w / p
        } else {
          sum -= Double(w * logf(1 - p))
          dp[j] += inside * g * w / (1 - p)
        }
      }
      total += sum
    }
    return total / pixels
  }

  /// The CGM's binary cross-entropy: the mean over the 2N entries of
  /// −[y·log q + (1−y)·log(1−q)] with y = (1 − c, c), c = 1 when the item's target has a
  /// foreground pixel; logarithms clamped at −100 and the gradient (q − y)/max(q(1−q), 1e−12),
  /// as PyTorch's `binary_cross_entropy`. Adds `scale`·∂/∂q into `dq` (N × 2).
  static func classification(
    _ q: UnsafePointer<Float>, items: Int, targets: UnsafePointer<Int32>, plane: Int, scale: Float, dq: UnsafeMutablePointer<Float>
  ) -> Double {
    var total = 0.0
    let g = Double(scale) / Double(2 * items)
    for n in 0..<items {
      var present: Float = 0
      for i in 0..<plane where targets[n * plane + i] != 0 {
        present = 1
        break
      }
      for k in 0..<2 {
        let y: Float = k == 1 ? present : 1 - present
        let v = Double(q[2 * n + k])
        total -= Double(y) * max(log(v), -100) + Double(1 - y) * max(log(1 - v), -100)
        dq[2 * n + k] += Float(g * (v - Double(y)) / max(v * (1 - v), 1e-12))
      }
    }
    return total / Double(2 * items)
  }
}
