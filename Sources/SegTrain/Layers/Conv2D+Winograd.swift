import CConvKernels
import Foundation
import SegCore
import Synchronization

/// Winograd F(2×2, 3×3) for the stride-1 3×3 convolutions (CConvKernels/winograd.c): each
/// 2 × 2 output tile from its 4 × 4 input window with 16 multiplications per input–output
/// channel pair instead of 36. The forward pass and the input gradient (the forward of the
/// padded dY with the flipped, transposed kernel) use it; the weight gradient stays direct.
///
/// The transforms reassociate each output's sum, so results differ from the direct and GEMM
/// paths by float rounding only: Tests/SegTrainTests/ConvWinogradTests.swift bounds the
/// difference from a naive Double convolution by 1e-5 of the largest |term| sum (Σ |w|·|x|
/// over a kernel's window, the scale a float convolution's rounding error is measured on).
/// Results are the same bytes for any thread count: every output tile is computed by one
/// thread in a fixed order, and bands start at even rows.
extension ConvKernels {
  private static let winogradStorage = Atomic<Bool>(initialWinograd())
  @TaskLocal static var winogradOverride: Bool?

  /// Whether the layers the measured rule picks (`Conv2D.usesWinograd(for:backward:)`) run
  /// Winograd: the innermost ``with(_:everyShape:winograd:_:)`` of the task, else
  /// ``setWinograd(_:)``'s choice, else `UNET_CONV_WINOGRAD=on|off` (default on). Needs the
  /// vector kernels (``current`` ≠ ``gemm``).
  public static var winograd: Bool {
    (winogradOverride ?? winogradStorage.load(ordering: .relaxed)) && current != .gemm
  }

  /// Sets the process-wide Winograd choice.
  public static func setWinograd(_ on: Bool) { winogradStorage.store(on, ordering: .relaxed) }

  /// `UNET_CONV_WINOGRAD` if set (on/off, 1/0, true/false), else on; anything else is said on
  /// stderr and the default kept.
  private static func initialWinograd() -> Bool {
    guard let raw = getenv("UNET_CONV_WINOGRAD") else { return true }
    switch String(cString: raw).lowercased() {
    case "on", "1", "true", "yes": return true
    case "off", "0", "false", "no": return false
    case let other:
      FileHandle.standardError.write(Data("unet: UNET_CONV_WINOGRAD=\(other) is not on or off; using on\n".utf8))
      return true
    }
  }
}

extension Conv2D {
  /// Whether this 3×3 convolution runs Winograd for input shape `s`: the forward pass, or (with
  /// `backward`) the backward pass through the direct path with Winograd's input gradient. The
  /// rule is what the per-layer profile of the U-Net step measured on a Zen 2 core (README,
  /// "Winograd F(2×2, 3×3)"): the forward wins at every level; the backward wins wherever the
  /// direct backward ran and also on the deep levels that the GEMM backward had (128→128 @32:
  /// 10.6 against 15.5 ms per step), except at 16 columns with more than 128 input channels
  /// (256→256 @16: 8.7 against 8.5 ms), where the weight packing outweighs the saving.
  func usesWinograd(for s: TensorShape, backward: Bool) -> Bool {
    guard kernelSize == 3 && inChannels > 1 && ConvKernels.winograd else { return false }
    if ConvKernels.everyShape || !backward { return true }
    return s.w + 2 * padding - 2 >= 32 || inChannels <= 128
  }

  /// Whether the direct backward computes this layer's weight gradient through Winograd
  /// (the input and dY transforms, 16 products per tile, Gᵀ M G): measured faster from
  /// `winogradWeightGradientChannels` channels in and out together (README).
  func usesWinogradWeightGradient(for s: TensorShape) -> Bool {
    guard kernelSize == 3 && inChannels > 1 && ConvKernels.winograd else { return false }
    if ConvKernels.everyShape { return true }
    return inChannels + outChannels >= Self.winogradWeightGradientChannels
  }

  static let winogradWeightGradientChannels = 48
}
