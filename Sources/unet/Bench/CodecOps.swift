import SegCore
import SegIO

extension Bench {
  /// decode_* and encode_* ops (../shared/bench/README.md): bytes → array and array → bytes.
  static var codecOps: [BenchOp] {
    func decode(_ name: String, _ bytes: @escaping (BenchInputs) -> [UInt8]?) -> BenchOp {
      BenchOp(name: name, note: nil) { inputs in
        guard let data = bytes(inputs) else { return nil }
        _ = try ImageDecoder.decode(data)  // fail early, outside the timing
        return ({ blackHole(try ImageDecoder.decode(data)) }, [("bytes", .int(data.count))])
      }
    }
    func encode(_ name: String, level: Int) -> BenchOp {
      BenchOp(name: name, note: "filter: \(pngBenchFilter.rawValue)") { inputs in
        let image = inputs.image
        let options = PNGCodec.EncodeOptions(compressionLevel: level, filter: pngBenchFilter)
        let size = try PNGCodec.encode(image, options: options).count
        return ({ blackHole(try PNGCodec.encode(image, options: options)) },
                [("bytes", .int(size)), ("zlib_level", .int(level))])
      }
    }
    return [
      decode("decode_png8") { $0.imagePNG },
      decode("decode_png16") { $0.labelsPNG },
      decode("decode_tiff16") { $0.tiff16 },
      decode("decode_tiff16_deflate") { $0.tiff16Deflate },
      decode("decode_jpeg") { $0.jpeg },
      encode("encode_png8", level: 6),
      encode("encode_png8_fast", level: 1),
    ]
  }

  /// The row filter the PNG encode ops use.
  static let pngBenchFilter = PNGCodec.Filter.adaptive
}
