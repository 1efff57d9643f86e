import SegCore

/// Reading label masks: one page, one channel, integer values.
public enum LabelMask {
  /// Reads a label mask, refusing files that are not a single 2-D integer mask. Palette images
  /// keep their indices unless `options` says otherwise.
  public static func read(_ path: String, options: DecodeOptions = DecodeOptions(palette: .indices)) throws(ImageIOError) -> Image {
    let decoded = try ImageDecoder.read(path, options: options)
    do {
      return try validate(decoded)
    } catch {
      throw error.at(path)
    }
  }

  /// Checks a decoded file is usable as a label mask and returns it.
  public static func validate(_ decoded: DecodedImage) throws(ImageIOError) -> Image {
    guard decoded.pages.count == 1 else {
      throw ImageIOError(.unsupported, "a label mask must have one page, this file has \(decoded.pages.count)")
    }
    let image = decoded.image
    guard image.channels == 1 else {
      throw ImageIOError(
        .unsupported, "a label mask must have one channel, this one has \(image.channels)",
        hint: decoded.colorModel == "palette" ? "palette masks keep their indices with --palette indices" : nil)
    }
    if image.pixelType == .float32 {
      for v in image.floatSamples() where !(v.isFinite && v >= 0 && v == v.rounded() && v < 4_294_967_296) {
        throw ImageIOError(.unsupported, "label values must be non-negative integers, found \(v)")
      }
    }
    return image
  }
}
