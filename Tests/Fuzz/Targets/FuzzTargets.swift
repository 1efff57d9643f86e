import SegCache
import SegCore
import SegIO
import SegPipeline
import SegTrain
import SegWorkflow

/// The fuzz targets: each feeds bytes from a stranger to one of the readers, through the
/// public API, exactly as the tool does. A reader may accept the bytes or throw its typed error;
/// anything else (a trap, a non-typed error, a message over several lines) stops the process,
/// which is what libFuzzer reports as a crash. `.ci/fuzz` runs them under libFuzzer with
/// AddressSanitizer; `FuzzRegressionTests` runs every saved seed and crash input through the
/// same functions in the normal test suite.
public enum FuzzTarget: String, CaseIterable, Sendable {
  case png, jpeg, tiff, npy, mask, yaml, tar, manifest, checkpoint

  /// Decode limits small enough that no input can make the harness allocate more than a few
  /// hundred MB (the tool's defaults are larger; the limits' code paths are the same).
  public static let decodeOptions = DecodeOptions(maxPixels: 1 << 20)

  /// Runs one input.
  public func run(_ bytes: [UInt8]) {
    switch self {
    case .png: Self.image(bytes) { (b, o) throws(ImageIOError) in try PNGCodec.decode(b, options: o) }
    case .jpeg: Self.image(bytes) { (b, o) throws(ImageIOError) in try JPEGCodec.decode(b, options: o) }
    case .tiff: Self.image(bytes) { (b, o) throws(ImageIOError) in try TIFFCodec.decode(b, options: o) }
    case .npy: Self.npy(bytes)
    case .mask: Self.mask(bytes)
    case .yaml: Self.yaml(bytes)
    case .tar: Self.tar(bytes)
    case .manifest: Self.manifest(bytes)
    case .checkpoint: Self.checkpoint(bytes)
    }
  }

  // MARK: - Images

  /// The palette mode comes from the input's length, so both modes are exercised.
  static func options(_ bytes: [UInt8]) -> DecodeOptions {
    var o = decodeOptions
    o.palette = bytes.count % 2 == 0 ? .expand : .indices
    return o
  }

  static func image(_ bytes: [UInt8], _ decode: ([UInt8], DecodeOptions) throws(ImageIOError) -> DecodedImage) {
    do {
      check(try decode(bytes, options(bytes)))
    } catch {
      check(error)
    }
  }

  static func npy(_ bytes: [UInt8]) {
    do {
      check(try ImageDecoder.decode(bytes, options: options(bytes)))
    } catch {
      check(error)
    }
    // The raw array reader (shards use it) has no pixel budget of its own: only the bytes.
    do {
      let array = try NpyArray.decode(bytes)
      precondition(array.data.count == array.count * array.dtype.size, "npy: data size does not match the shape")
      _ = array.floats()
    } catch {
      check(error)
    }
  }

  static func mask(_ bytes: [UInt8]) {
    var o = decodeOptions
    o.palette = .indices
    do {
      let image = try LabelMask.validate(try ImageDecoder.decode(bytes, options: o))
      precondition(image.channels == 1 && image.pixelType.isInteger, "mask: not one integer channel")
      _ = image.labelSamples().max()
    } catch {
      check(error)
    }
  }

  /// Invariants of every decoded image.
  static func check(_ decoded: DecodedImage) {
    precondition(!decoded.pages.isEmpty, "decoder returned no pages")
    for page in decoded.pages {
      precondition(page.width >= 0 && page.height >= 0 && page.channels >= 1, "bad image shape")
      precondition(page.width * page.height <= decodeOptions.maxPixels, "decoder exceeded the pixel budget")
    }
  }

  // MARK: - Text and containers

  static func yaml(_ bytes: [UInt8]) {
    let text = String(decoding: bytes, as: UTF8.self)
    do {
      let spec = try PipelineSpec.parse(text, file: "fuzz.yaml")
      _ = spec.canonical.serialized()
    } catch {
      check(error)
    }
  }

  /// A shard as the reader sees it: tar members, then each member decoded by its suffix.
  static func tar(_ bytes: [UInt8]) {
    let members: [Tar.Member]
    do {
      members = try Tar.members(bytes, path: "fuzz.tar")
    } catch {
      check(error)
      return
    }
    for m in members {
      precondition(m.offset >= 0 && m.size >= 0 && m.offset + m.size <= bytes.count, "tar: member outside the archive")
      let data = Array(bytes[m.offset..<(m.offset + m.size)])
      do {
        if m.name.hasSuffix(".image.npy") {
          _ = try SampleCodec.decodeImage(data, scale: 1.0 / 255, path: "fuzz.tar", key: m.name)
        } else if m.name.hasSuffix(".npy") {
          _ = try SampleCodec.decodePlane(data, path: "fuzz.tar", key: m.name, member: "mask")
        } else if m.name.hasSuffix(".json") {
          _ = try SampleCodec.decodeRecord(data, path: "fuzz.tar", key: m.name)
        }
      } catch {
        check(error)
      }
    }
  }

  /// A manifest, then what the trainer derives from it (shapes, split, counts).
  static func manifest(_ bytes: [UInt8]) {
    let manifest: ShardManifest
    do {
      manifest = try ShardManifest.decode(bytes, path: "fuzz/manifest.json")
    } catch {
      check(error)
      return
    }
    _ = manifest.sampleCount
    _ = manifest.byteCount
    let set = ShardSet(directory: "fuzz", manifest: manifest)
    do {
      let data = try TrainingData(set: set, validationFraction: 0.2, validationStems: nil, classes: nil, seed: 1)
      _ = data.trainingCount
    } catch {
      check(error)
    }
  }

  /// A checkpoint. The trailing SHA-256 is recomputed first (else nearly every mutation stops
  /// at the checksum and the header parser is never reached).
  static func checkpoint(_ bytes: [UInt8]) {
    var b = bytes
    if b.count >= 48 {
      let body = Array(b[0..<(b.count - 32)])
      b.replaceSubrange((b.count - 32)..., with: SHA256.hash(body))
    }
    do {
      let c = try Checkpoint.decode(b, path: "fuzz.ckpt")
      precondition(c.model.parameters.count * 4 <= b.count, "checkpoint: more parameters than bytes")
    } catch {
      check(error)
    }
  }

  /// A typed error must say something, on one line.
  static func check(_ error: some UserFacingError) {
    let line = error.description
    precondition(!error.message.isEmpty && !line.isEmpty, "empty error message")
    precondition(!line.contains("\n"), "error over several lines: \(line)")
  }
}
