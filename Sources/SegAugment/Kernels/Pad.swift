import SegCore

/// Padding by mirroring.
public enum Pad {
  /// Pads every channel by the given margins with numpy's `reflect` (mirror without repeating
  /// the edge pixel), for any margin, also larger than the image (the reflection repeats).
  ///
  /// - Complexity: O(output pixels): a copy per row plus a gather for the margins, with the
  ///   reflected column indices computed once.
  public static func reflect(_ image: Image, top: Int, bottom: Int, left: Int, right: Int) -> Image {
    precondition(top >= 0 && bottom >= 0 && left >= 0 && right >= 0, "negative padding")
    switch image.storage {
    case .uint8(let a): return Image(width: image.width + left + right, height: image.height + top + bottom, channels: image.channels, pixels: pad(a, image, top, bottom, left, right))
    case .uint16(let a): return Image(width: image.width + left + right, height: image.height + top + bottom, channels: image.channels, pixels: pad(a, image, top, bottom, left, right))
    case .uint32(let a): return Image(width: image.width + left + right, height: image.height + top + bottom, channels: image.channels, pixels: pad(a, image, top, bottom, left, right))
    case .float32(let a): return Image(width: image.width + left + right, height: image.height + top + bottom, channels: image.channels, pixels: pad(a, image, top, bottom, left, right))
    }
  }

  /// The same margin on all four sides.
  public static func reflect(_ image: Image, margin: Int) -> Image {
    reflect(image, top: margin, bottom: margin, left: margin, right: margin)
  }

  static func pad<T: BitwiseCopyable>(_ a: [T], _ image: Image, _ top: Int, _ bottom: Int, _ left: Int, _ right: Int) -> [T] {
    let w = image.width
    let h = image.height
    let ow = w + left + right
    let oh = h + top + bottom
    let leftIndex = (0..<left).map { Border.reflect($0 - left, w) }
    let rightIndex = (0..<right).map { Border.reflect(w + $0, w) }
    let count = ow * oh * image.channels
    return [T](unsafeUninitializedCapacity: count) { out, initialized in
      a.withUnsafeBufferPointer { src in
        guard let s = src.baseAddress, let o = out.baseAddress else { return }
        for c in 0..<image.channels {
          let sp = s + c * w * h
          let op = o + c * ow * oh
          for y in 0..<oh {
            let srow = sp + Border.reflect(y - top, h) * w
            let orow = op + y * ow
            for i in 0..<left { (orow + i).initialize(to: srow[leftIndex[i]]) }
            (orow + left).initialize(from: srow, count: w)
            for i in 0..<right { (orow + left + w + i).initialize(to: srow[rightIndex[i]]) }
          }
        }
      }
      initialized = count
    }
  }
}
