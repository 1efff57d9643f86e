import SegCore
import SegIO

#if canImport(Glibc)
  import Glibc
#endif

/// One source of samples: the image file(s) (several files are stacked as channels, e.g.
/// modalities) and the mask, paired by file stem.
public struct SourcePair: Sendable, Equatable, Codable {
  public var stem: String
  public var images: [String]
  public var mask: String?

  public init(stem: String, images: [String], mask: String?) {
    self.stem = stem
    self.images = images
    self.mask = mask
  }
}

/// Where the sources come from, as the pipeline file says.
public enum SourceSpec: Sendable, Equatable {
  /// One glob per modality (stacked as channels in this order) and an optional mask glob,
  /// paired by file stem; paths relative to the pipeline file.
  case globs(images: [String], masks: String?)
  /// An explicit list.
  case pairs([SourcePair])
  /// A folder laid out as images/ + labels/ (the `--source DIR` override).
  case folder(String)

  /// Expands the spec into sources sorted by stem.
  ///
  /// - Parameter base: the folder relative paths are relative to (the pipeline file's).
  /// - Throws: `noSources` when nothing matches, `unpaired` for an image without a mask (when
  ///   masks are given), a mask without an image, or modalities that do not pair up.
  public func resolve(base: String, file: String?) throws(PipelineError) -> [SourcePair] {
    switch self {
    case .pairs(let list):
      guard !list.isEmpty else { throw PipelineError(.noSources, path: file, key: "sources", "the list of pairs is empty") }
      return list.map { p in
        SourcePair(stem: p.stem, images: p.images.map { Self.join(base, $0) }, mask: p.mask.map { Self.join(base, $0) })
      }
    case .folder(let dir):
      let images = dir + "/images"
      let labels = dir + "/labels"
      guard FileIO.isDirectory(images) else {
        throw PipelineError(.noSources, path: dir, "no images/ folder here (expected images/ and labels/)")
      }
      let imageFiles: [String]
      do {
        imageFiles = try ImageFiles.list(images)
      } catch {
        throw PipelineError(.noSources, path: images, error.message)
      }
      guard !imageFiles.isEmpty else { throw PipelineError(.noSources, path: images, "no image files in this folder") }
      var maskFiles: [String]? = nil
      if FileIO.isDirectory(labels) {
        do {
          maskFiles = try ImageFiles.list(labels)
        } catch {
          throw PipelineError(.noSources, path: labels, error.message)
        }
      }
      return try Self.pair(modalities: [imageFiles], masks: maskFiles, where_: dir, file: nil)
    case .globs(let imageGlobs, let maskGlob):
      var modalities: [[String]] = []
      for pattern in imageGlobs {
        let files = Self.glob(Self.join(base, pattern)).filter(ImageFiles.isImageName)
        guard !files.isEmpty else {
          throw PipelineError(.noSources, path: file, key: "sources.images", "no image files match \(pattern)")
        }
        modalities.append(files)
      }
      var masks: [String]? = nil
      if let maskGlob {
        let files = Self.glob(Self.join(base, maskGlob)).filter(ImageFiles.isImageName)
        guard !files.isEmpty else {
          throw PipelineError(.noSources, path: file, key: "sources.masks", "no mask files match \(maskGlob)")
        }
        masks = files
      }
      return try Self.pair(modalities: modalities, masks: masks, where_: file, file: file)
    }
  }

  /// Pairs files by stem: every modality and the masks must hold the same stems.
  static func pair(modalities: [[String]], masks: [String]?, where_: String?, file: String?) throws(PipelineError)
    -> [SourcePair]
  {
    func byStem(_ files: [String], _ what: String) throws(PipelineError) -> [String: String] {
      var out: [String: String] = [:]
      for f in files {
        let stem = ImageFiles.stem(f)
        if let other = out[stem] {
          throw PipelineError(.unpaired, path: f, "\(what) \(other) has the same stem \"\(stem)\"; stems must be unique")
        }
        out[stem] = f
      }
      return out
    }
    guard let first = modalities.first else { throw PipelineError(.noSources, path: where_, "no images") }
    let primary = try byStem(first, "image")
    var others: [[String: String]] = []
    for m in modalities.dropFirst() { others.append(try byStem(m, "image")) }
    let maskMap = try masks.map { (m) throws(PipelineError) -> [String: String] in try byStem(m, "mask") }
    // Report the first stem (in sorted order) that lacks a partner.
    for stem in primary.keys.sorted() {
      for (k, other) in others.enumerated() where other[stem] == nil {
        throw PipelineError(.unpaired, path: primary[stem], "has no partner in image pattern \(k + 2) (stem \"\(stem)\")")
      }
      if let maskMap, maskMap[stem] == nil {
        throw PipelineError(.unpaired, path: primary[stem], "image has no mask with the same stem \"\(stem)\"")
      }
    }
    for other in others {
      for stem in other.keys.sorted() where primary[stem] == nil {
        throw PipelineError(.unpaired, path: other[stem], "has no partner among the first images (stem \"\(stem)\")")
      }
    }
    if let maskMap {
      for stem in maskMap.keys.sorted() where primary[stem] == nil {
        throw PipelineError(.unpaired, path: maskMap[stem], "mask has no image with the same stem \"\(stem)\"")
      }
    }
    return primary.keys.sorted().map { stem in
      SourcePair(stem: stem, images: [primary[stem] ?? ""] + others.map { $0[stem] ?? "" }, mask: maskMap?[stem])
    }
  }

  /// `path` relative to `base` unless absolute.
  static func join(_ base: String, _ path: String) -> String {
    if path.hasPrefix("/") || base.isEmpty || base == "." { return path }
    return base + "/" + path
  }

  /// POSIX glob with brace alternatives (`train_{0?,1?,2[0-4]}.png`), sorted byte-wise.
  static func glob(_ pattern: String) -> [String] {
    var g = glob_t()
    defer { globfree(&g) }
    guard Glibc.glob(pattern, GLOB_BRACE, nil, &g) == 0 else { return [] }
    var out: [String] = []
    for i in 0..<Int(g.gl_pathc) {
      if let p = g.gl_pathv[i] { out.append(String(cString: p)) }
    }
    return out.sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }
  }
}
