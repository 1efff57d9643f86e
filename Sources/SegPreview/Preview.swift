import SegAugment
import SegCache
import SegCore
import SegIO
import SegPipeline
import SegRender
import SegWeights

/// What to render.
public struct PreviewOptions: Sendable {
  public var count: Int
  /// Replaces the pipeline's seed (nil: the pipeline's, so sample k equals sample k of its shards).
  public var seed: UInt64?
  public var outputDirectory: String
  /// Panels are scaled to fit this many pixels per side.
  public var panelSize: Int
  public var workers: Int

  public init(count: Int = 8, seed: UInt64? = nil, outputDirectory: String, panelSize: Int = 256, workers: Int = 1) {
    self.count = count
    self.seed = seed
    self.outputDirectory = outputDirectory
    self.panelSize = panelSize
    self.workers = workers
  }
}

/// The files a preview wrote.
public struct PreviewResult: Sendable {
  public var contactSheet: String
  public var samples: [String]
  public var page: String
  public var notes: [String]
}

/// `unet preview`: a contact sheet, one PNG per sample and an offline HTML page that shows them
/// with the parameters each sample drew.
public enum Preview {
  public static let columns = ["source", "augmented", "mask overlay", "weight map", "deformation grid"]

  /// One preview row: the panels at display size (nil where the data has no such panel).
  struct Row: Sendable {
    var label: String
    var panels: [Canvas?]
    var record: JSONValue
  }

  /// Renders the first `count` samples of a pipeline (without writing shards).
  public static func fromPipeline(_ spec: PipelineSpec, options: PreviewOptions) async throws -> PreviewResult {
    var spec = spec
    if let seed = options.seed { spec.seed = seed }
    let engine = try await PipelineEngine(spec: spec).preparingDatasetStatistics(workers: options.workers)
    let count = min(options.count, engine.sampleCount)
    var rows: [Row] = []
    let maskKind = spec.mask
    let panelSize = options.panelSize
    // Rows are rendered on the worker tasks, then collected in order.
    try await engine.run(
      indices: Array(0..<count), workers: options.workers, trackMap: true, keepSource: true,
      transform: { s in row(for: s, mask: maskKind, panelSize: panelSize) }, consume: { rows.append($0) })
    var notes: [String] = []
    if engine.sources.first?.mask == nil { notes.append("This pipeline has no masks: only the image panels are shown.") }
    if !spec.stages.contains(where: { $0 is WeightMapStage }) && engine.sources.first?.mask != nil {
      notes.append("This pipeline has no weight_map stage: the weight-map column is empty.")
    }
    return try write(
      rows, options: options, title: "unet preview: \(spec.file)",
      facts: [("pipeline", spec.file), ("seed", String(spec.seed)), ("samples", "\(count) of \(engine.sampleCount)")],
      notes: notes)
  }

  /// Renders samples already in a shard set.
  public static func fromShards(
    _ directory: String, options: PreviewOptions, limits: ManifestLimits = ManifestLimits()
  ) throws -> PreviewResult {
    let set = try ShardSet(directory: directory, limits: limits)
    var rows: [Row] = []
    let kind = MaskKind(rawValue: set.manifest.settings.maskKind ?? "auto") ?? .auto
    outer: for i in set.manifest.shards.indices {
      for s in try set.samples(inShard: i) {
        if rows.count >= options.count { break outer }
        rows.append(row(for: s, kind: kind, panelSize: options.panelSize))
      }
    }
    let seed = set.manifest.pipeline["seed"].map { "\($0.serialized())" } ?? "-"
    return try write(
      rows, options: options, title: "unet preview: \(directory)",
      facts: [("shards", directory), ("pipeline", set.manifest.pipelineFile ?? "-"), ("seed", seed),
              ("samples", "\(rows.count) of \(set.manifest.sampleCount)")],
      notes: ["Samples read from shards: the source image and the deformation are not stored there."])
  }

  // MARK: - Panels

  static func row(for s: ProcessedSample, mask settings: MaskSettings, panelSize: Int) -> Row {
    let sample = s.sample
    let augmented = Display.canvas(for: sample.image, alwaysWindow: true)
    var panels: [Canvas?] = [nil, Panels.fit(augmented, maxSide: panelSize), nil, nil, nil]
    if let source = s.sourceImage {
      panels[0] = Panels.fit(Display.canvas(for: source, alwaysWindow: true), maxSide: panelSize)
    }
    if let mask = sample.mask {
      let ids = InstanceMap(mask: mask, kind: settings.kind, connectivity: settings.connectivity).ids
      panels[2] = Panels.fit(Panels.labelOverlay(augmented, ids: ids), maxSide: panelSize)
    }
    if let w = sample.weights { panels[3] = weightPanel(w, panelSize: panelSize) }
    if let map = s.sourceMap, let source = s.sourceImage {
      let shown = Panels.fit(augmented, maxSide: panelSize)
      let xs = Panels.nearest(map.x, width: map.width, height: map.height, to: shown.width, shown.height)
      let ys = Panels.nearest(map.y, width: map.width, height: map.height, to: shown.width, shown.height)
      // About 16 grid cells across the source, at least 8 source pixels apart.
      let spacing = Float(max(8, max(source.width, source.height) / 16))
      panels[4] = Panels.deformationGrid(shown, sourceX: xs, sourceY: ys, spacing: spacing)
    }
    var stem = "?"
    if case .string(let name)? = s.record["source"]?["stem"] { stem = name }
    return Row(label: "sample \(s.index): source \(stem) #\(s.sampleInSource)", panels: panels, record: s.record)
  }

  static func row(for s: StoredSample, kind: MaskKind, panelSize: Int) -> Row {
    let image = Display.canvas(for: s.image, alwaysWindow: true)
    var panels: [Canvas?] = [nil, Panels.fit(image, maxSide: panelSize), nil, nil, nil]
    if let mask = s.mask {
      // A tile's label window is the centre of its input window.
      let dx = (s.image.width - mask.width) / 2
      let dy = (s.image.height - mask.height) / 2
      var base = Canvas(width: mask.width, height: mask.height)
      base.paste(image, x: -dx, y: -dy)
      let ids = InstanceMap(mask: mask, kind: kind).ids
      panels[2] = Panels.fit(Panels.labelOverlay(base, ids: ids), maxSide: panelSize)
    }
    if let w = s.weight { panels[3] = weightPanel(w, panelSize: panelSize) }
    return Row(label: "\(s.key) (shard \(s.shard), member \(s.member))", panels: panels, record: s.record)
  }

  /// A heat map scaled to the panel size with its colour scale beside it.
  static func weightPanel(_ w: Image, panelSize: Int) -> Canvas {
    let values = w.floatSamples()
    let finite = values.filter { $0.isFinite }
    let lo = finite.min() ?? 0
    let hi = max(finite.max() ?? 1, lo)
    let map = Panels.fit(Display.heatMap(values, width: w.width, height: w.height, range: lo...hi), maxSide: panelSize)
    let bar = Display.colorBar(height: max(map.height, 60), range: lo...hi, title: "w")
    var out = Canvas(width: map.width + 4 + bar.width, height: max(map.height, bar.height))
    out.paste(map, x: 0, y: 0)
    out.paste(bar, x: map.width + 4, y: 0)
    return out
  }

  // MARK: - Files

  /// Previews favour speed over size: zlib level 2 and the Sub filter (panels have flat
  /// areas and smooth ramps) encode several times faster than the defaults.
  static let pngOptions = PNGCodec.EncodeOptions(compressionLevel: 2, filter: .sub)

  static func write(
    _ rows: [Row], options: PreviewOptions, title: String, facts: [(String, String)], notes: [String]
  ) throws -> PreviewResult {
    let dir = options.outputDirectory
    try FileIO.makeDirectories(dir)
    var sheet = ContactSheet(columnTitles: columns)
    var samplePaths: [String] = []
    for (k, row) in rows.enumerated() {
      sheet.add(label: row.label, panels: row.panels)
      var single = ContactSheet(columnTitles: columns)
      single.add(label: row.label, panels: row.panels)
      let name = "sample-\(k < 10 ? "00" : (k < 100 ? "0" : ""))\(k).png"
      try FileIO.writeAtomically(try PNGCodec.encode(single.render().image, options: pngOptions), to: dir + "/" + name)
      samplePaths.append(dir + "/" + name)
    }
    let contact = dir + "/contact-sheet.png"
    try FileIO.writeAtomically(try PNGCodec.encode(sheet.render().image, options: pngOptions), to: contact)
    let page = dir + "/index.html"
    try FileIO.writeAtomically(Array(html(rows, title: title, facts: facts, notes: notes, samples: samplePaths).utf8), to: page)
    return PreviewResult(contactSheet: contact, samples: samplePaths, page: page, notes: notes)
  }

  /// A self-contained page (no scripts, no network): the facts, notes, the contact sheet, and
  /// each sample's PNG with its record.
  static func html(_ rows: [Row], title: String, facts: [(String, String)], notes: [String], samples: [String]) -> String {
    var h = """
      <!DOCTYPE html>
      <html lang="en"><head><meta charset="utf-8"><title>\(htmlEscape(title))</title>
      <style>
      body { font-family: sans-serif; margin: 1.5em; color: #222; }
      table.facts td { padding: 0.1em 1em 0.1em 0; }
      .note { background: #fff4d6; padding: 0.4em 0.8em; border-left: 4px solid #e0a800; }
      img { image-rendering: pixelated; max-width: 100%; }
      pre { background: #f5f5f5; padding: 0.6em; overflow-x: auto; font-size: 0.85em; }
      section { margin: 1.5em 0; border-top: 1px solid #ddd; padding-top: 0.8em; }
      </style></head><body>
      <h1>\(htmlEscape(title))</h1>
      <table class="facts">

      """
    for (k, v) in facts { h += "<tr><td><b>\(htmlEscape(k))</b></td><td>\(htmlEscape(v))</td></tr>\n" }
    h += "</table>\n"
    for note in notes { h += "<p class=\"note\">\(htmlEscape(note))</p>\n" }
    h += "<h2>Contact sheet</h2>\n<p><img src=\"contact-sheet.png\" alt=\"contact sheet\"></p>\n"
    for (row, path) in zip(rows, samples) {
      let name = path.split(separator: "/").last.map(String.init) ?? path
      h += "<section><h3>\(htmlEscape(row.label))</h3>\n"
      h += "<p><img src=\"\(htmlEscape(name, attribute: true))\" alt=\"\(htmlEscape(row.label, attribute: true))\"></p>\n"
      h += "<pre>\(htmlEscape(pretty(row.record)))</pre></section>\n"
    }
    h += "</body></html>\n"
    return h
  }

  /// The record with one stage per line.
  static func pretty(_ record: JSONValue) -> String {
    guard case .object(let fields) = record else { return record.serialized() }
    var lines: [String] = []
    for (k, v) in fields {
      if k == "stages", case .array(let stages) = v {
        lines.append("\"stages\":")
        for s in stages { lines.append("  " + s.serialized()) }
      } else {
        lines.append("\"\(k)\": " + v.serialized())
      }
    }
    return lines.joined(separator: "\n")
  }
}
