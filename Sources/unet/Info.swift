import Foundation
import ArgumentParser
import SegCore
import SegIO

/// Options every command that decodes images shares.
struct DecodeFlags: ParsableArguments {
  @Option(help: "Refuse images that declare more pixels than this (width × height × pages), before allocating.")
  var maxPixels: Int = DecodeOptions.defaultMaxPixels

  @Option(help: "Palette images: expand to RGB, or keep the indices (label masks).")
  var palette: PaletteMode = .expand

  var options: DecodeOptions { DecodeOptions(maxPixels: maxPixels, palette: palette) }

  func validate() throws {
    guard maxPixels > 0 else { throw ValidationError("--max-pixels must be positive") }
  }
}

extension PaletteMode: ExpressibleByArgument {}

struct Info: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Describe image files: format, size, channels, pages, dtype, bit depth, value range.",
    discussion: """
      A folder argument lists every image in it and below it (.png, .jpg, .jpeg, .tif, .tiff, \
      .npy), in name order. A file that fails prints an error line (with --json an object with \
      an "error" key) while the others still print; the exit status is then 1.
      """)

  @Argument(help: "Image files or folders.", completion: .file())
  var paths: [String]

  @Flag(help: "One JSON object per file (keys: path, format, width, height, channels, pages, dtype, bits, min, max; error on failure).")
  var json = false

  @OptionGroup var decode: DecodeFlags

  func run() throws {
    var failed = false
    var files: [String] = []
    for path in paths {
      if FileIO.isDirectory(path) {
        do {
          let found = try ImageFiles.list(path, recursive: true)
          if found.isEmpty { throw ImageIOError(.unreadable, path: path, "no image files in this folder") }
          files += found
        } catch {
          emitFailure(path: path, error: error)
          failed = true
        }
      } else {
        files.append(path)
      }
    }
    for file in files {
      do {
        let decoded = try ImageDecoder.read(file, options: decode.options)
        let summary = ImageSummary(path: file, decoded: decoded)
        print(json ? summary.json.serialized() : summary.line)
      } catch {
        emitFailure(path: file, error: error)
        failed = true
      }
    }
    flushStandardOutput()
    if failed { throw ExitCode.failure }
  }

  func emitFailure(path: String, error: any Error) {
    let message = (error as? any UserFacingError)?.message ?? "\(error)"
    if json {
      print(JSONValue.object([("path", .string(path)), ("error", .string(message.replacingNewlines()))]).serialized())
    } else {
      flushStandardOutput()
      reportError(error)
    }
  }
}

/// What `unet info` prints about one decoded file.
struct ImageSummary {
  var path: String
  var decoded: DecodedImage

  var dtype: String { decoded.image.pixelType.rawValue }

  /// Value range over all pages.
  var range: (min: Double, max: Double)? {
    var lo = Double.infinity
    var hi = -Double.infinity
    for page in decoded.pages {
      if let r = page.range {
        lo = min(lo, r.min)
        hi = max(hi, r.max)
      }
    }
    return lo <= hi ? (lo, hi) : nil
  }

  var line: String {
    let img = decoded.image
    let pages = decoded.pages.count
    let format = decoded.format.rawValue.uppercased()
    var parts = ["\(format) \(img.width) × \(img.height)"]
    parts.append("\(img.channels) channel\(img.channels == 1 ? "" : "s")")
    parts.append("\(pages) page\(pages == 1 ? "" : "s")")
    parts.append("\(dtype) (\(decoded.bitsPerSample)-bit \(decoded.colorModel))")
    if let r = range {
      parts.append("min \(formatNumber(r.min)) max \(formatNumber(r.max))")
    } else {
      parts.append("no finite values")
    }
    var text = "\(path): " + parts.joined(separator: ", ")
    if !decoded.details.isEmpty { text += " [" + decoded.details.joined(separator: ", ") + "]" }
    return text
  }

  var json: JSONValue {
    let img = decoded.image
    let r = range
    func number(_ v: Double?) -> JSONValue {
      guard let v else { return .null }
      return img.pixelType.isInteger ? .int(Int(v)) : .double(v)
    }
    return .object([
      ("path", .string(path)),
      ("format", .string(decoded.format.rawValue)),
      ("width", .int(img.width)),
      ("height", .int(img.height)),
      ("channels", .int(img.channels)),
      ("pages", .int(decoded.pages.count)),
      ("dtype", .string(dtype)),
      ("bits", .int(decoded.bitsPerSample)),
      ("min", number(r?.min)),
      ("max", number(r?.max)),
    ])
  }
}

/// A number without a trailing ".0" when it is whole, otherwise six significant digits.
func formatNumber(_ v: Double) -> String {
  if v == v.rounded() && abs(v) < 1e15 { return String(Int64(v)) }
  return String(format: "%.6g", v)
}
