import CCodecShims
import SegCore

/// JPEG through libjpeg(-turbo) (via CCodecShims): baseline and progressive; gray, RGB, CMYK.
public enum JPEGCodec {
  static let colorModels: [Int32: String] = [1: "gray", 2: "rgb", 3: "ycbcr", 4: "cmyk", 5: "ycck"]

  /// Decodes a JPEG held in memory to uint8: one channel for gray, three (RGB) for everything
  /// else; CMYK and YCCK are converted to RGB (R = (255 − C)(255 − K) / 255, Adobe-inverted
  /// samples handled). A file that ends early throws `.truncated`.
  public static func decode(
    _ bytes: [UInt8], options: DecodeOptions = DecodeOptions()
  ) throws(ImageIOError) -> DecodedImage {
    var message = [CChar](repeating: 0, count: 256)
    return try bytes.withUnsafeBufferPointer { (buf) throws(ImageIOError) -> DecodedImage in
      var reader: OpaquePointer?
      var info = CCodecShims_jpeg_info()
      let status = CCodecShims_jpeg_open(buf.baseAddress, buf.count, &reader, &info, &message, message.count)
      guard status == 0, let reader else { throw codecError(status, message) }
      defer { CCodecShims_jpeg_close(reader) }
      let width = Int(info.width)
      let height = Int(info.height)
      try ImageDecoder.checkBudget(width: width, height: height, options: options)
      let channels = info.color_space == 1 ? 1 : 3
      let pixels = width * height
      var rc: Int32 = 0
      let interleaved = [UInt8](unsafeUninitializedCapacity: pixels * channels) { out, count in
        rc = CCodecShims_jpeg_read(reader, out.baseAddress, out.count, &message, message.count)
        // On failure nothing is kept (no zero fill: a tiny file claiming a huge image must
        // not make us touch all of it).
        count = rc == 0 ? pixels * channels : 0
      }
      guard rc == 0 else { throw codecError(rc, message) }
      let planar = interleaved.withUnsafeBufferPointer {
        deinterleave($0, channels: channels, pixels: pixels, zero: 0)
      }
      var details = [info.progressive != 0 ? "progressive" : "baseline"]
      let model = colorModels[info.color_space] ?? "unknown"
      if model == "ycbcr" { details.append("YCbCr") }
      if model == "cmyk" || model == "ycck" {
        details.append(info.adobe_inverted != 0 ? "Adobe inverted, converted to RGB" : "converted to RGB")
      }
      return DecodedImage(
        format: .jpeg, pages: [Image(width: width, height: height, channels: channels, pixels: planar)],
        bitsPerSample: 8, colorModel: model == "ycbcr" ? "rgb" : model, details: details)
    }
  }

  /// Encodes a uint8 image: 1 channel (gray), 3 (RGB) or 4 (CMYK ink values, written with an
  /// Adobe marker). `quality` 1...100.
  public static func encode(
    _ image: Image, quality: Int = 90, progressive: Bool = false
  ) throws(ImageIOError) -> [UInt8] {
    guard image.pixelType == .uint8 else {
      throw ImageIOError(.cannotEncode, "JPEG holds uint8 samples, not \(image.pixelType.rawValue)")
    }
    guard [1, 3, 4].contains(image.channels) else {
      throw ImageIOError(.cannotEncode, "JPEG holds 1, 3 or 4 channels, not \(image.channels)")
    }
    guard (1...100).contains(quality) else {
      throw ImageIOError(.cannotEncode, "JPEG quality \(quality) is outside 1...100")
    }
    let interleaved = image.interleavedBytes()
    var message = [CChar](repeating: 0, count: 256)
    var out: UnsafeMutablePointer<UInt8>?
    var size = 0
    let rc = CCodecShims_jpeg_encode(
      interleaved, UInt32(image.width), UInt32(image.height), Int32(image.channels),
      Int32(quality), progressive ? 1 : 0, &out, &size, &message, message.count)
    guard rc == 0, let out else { throw codecError(rc, message, prefix: "JPEG encoder: ") }
    defer { CCodecShims_free(out) }
    return Array(UnsafeBufferPointer(start: out, count: size))
  }
}
