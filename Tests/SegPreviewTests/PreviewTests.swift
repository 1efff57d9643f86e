import Foundation
import SegAugment
import SegCore
import SegIO
import SegPipeline
import SegPreview
import SegRender
import SegTestSupport
import Testing

@Suite struct PanelTests {
  @Test func overlayColoursOnlyMaskPixelsAndOutlinesTouchingCells() {
    let w = 12
    let h = 8
    let base = Canvas(width: w, height: h, background: RGB(100, 100, 100))
    var ids = [UInt32](repeating: 0, count: w * h)
    for y in 2..<6 {
      for x in 2..<6 { ids[y * w + x] = 4 }
      for x in 6..<10 { ids[y * w + x] = 9 }  // touches cell 4 with no gap
    }
    let out = Panels.labelOverlay(base, ids: ids)
    for y in 0..<h {
      for x in 0..<w {
        let changed = out.color(x: x, y: y) != base.color(x: x, y: y)
        #expect(changed == (ids[y * w + x] != 0), "pixel (\(x), \(y))")
      }
    }
    // The contact columns are outlines of their own cell's colour, so the two cells stay apart.
    #expect(out.color(x: 5, y: 3) != out.color(x: 6, y: 3))
    #expect(out.color(x: 5, y: 3) != out.color(x: 4, y: 3))
    #expect(Panels.color(forLabel: 4) != Panels.color(forLabel: 9))
  }

  @Test func identityGridDrawsStraightLines() {
    let w = 64
    let h = 48
    let map = SourceMap.identity(width: w, height: h)
    let grid = Panels.deformationGrid(Canvas(width: w, height: h), sourceX: map.x, sourceY: map.y, spacing: 8, dim: 0)
    let lit = (0..<(w * h)).map { grid.color(x: $0 % w, y: $0 / w) == .yellow }
    // Every lit pixel lies on a full lit column or a full lit row.
    let fullColumns = Set((0..<w).filter { x in (0..<h).allSatisfy { lit[$0 * w + x] } })
    let fullRows = Set((0..<h).filter { y in (0..<w).allSatisfy { lit[y * w + $0] } })
    #expect(fullColumns == Set([7, 15, 23, 31, 39, 47, 55]))
    #expect(fullRows == Set([7, 15, 23, 31, 39]))
    for i in 0..<(w * h) where lit[i] { #expect(fullColumns.contains(i % w) || fullRows.contains(i / w)) }
  }

  @Test func fitScalesDownByAveraging() {
    var c = Canvas(width: 4, height: 2, background: .black)
    c.set(x: 0, y: 0, .white)
    c.set(x: 1, y: 0, .white)
    let half = Panels.fit(c, maxSide: 2)
    #expect(half.width == 2 && half.height == 1)
    #expect(half.color(x: 0, y: 0) == RGB(127, 127, 127) && half.color(x: 1, y: 0) == .black)
    #expect(Panels.fit(c, maxSide: 100) == c, "never enlarged")
  }

  @Test func contactSheetLayout() {
    var sheet = ContactSheet(columnTitles: ["a", "b"])
    sheet.add(label: "row 0", panels: [Canvas(width: 30, height: 20), Canvas(width: 50, height: 10)])
    sheet.add(label: "row 1", panels: [nil, Canvas(width: 40, height: 25)])
    let c = sheet.render()
    // width: 2 margins + 30 + gap + 50; height: 2 margins + title + (label + tallest + gap) per row.
    #expect(c.width == 2 * 8 + 30 + 6 + 50)
    #expect(c.height == 2 * 8 + (10 + 6) + (10 + 4 + 20 + 6) + (10 + 4 + 25 + 6))
  }
}

@Suite struct PreviewOutputTests {
  @Test func previewWritesSheetSamplesAndPageDeterministically() async throws {
    let dir = TestPaths.temporaryDirectory("preview")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let spec = try PipelineSpec.load(TestPaths.pipelines + "/default.yaml")
    let a = try await Preview.fromPipeline(spec, options: PreviewOptions(count: 3, outputDirectory: dir + "/a", panelSize: 64, workers: 2))
    _ = try await Preview.fromPipeline(spec, options: PreviewOptions(count: 3, outputDirectory: dir + "/b", panelSize: 64, workers: 1))
    _ = try await Preview.fromPipeline(spec, options: PreviewOptions(count: 3, seed: 999, outputDirectory: dir + "/c", panelSize: 64))
    #expect(a.samples.count == 3)
    for name in ["contact-sheet.png", "sample-000.png", "sample-002.png", "index.html"] {
      let x = FileManager.default.contents(atPath: dir + "/a/" + name)
      #expect(x != nil && x == FileManager.default.contents(atPath: dir + "/b/" + name), "\(name) differs between runs")
    }
    #expect(FileManager.default.contents(atPath: dir + "/a/sample-000.png") != FileManager.default.contents(atPath: dir + "/c/sample-000.png"))
    // Panel layout: five 64-px columns (the weight column is wider: it carries its colour bar).
    let sheet = try ImageDecoder.read(a.contactSheet).image
    #expect(sheet.channels == 3 && sheet.width > 5 * 64 && sheet.height > 3 * 64)
    let page = try String(contentsOfFile: a.page, encoding: .utf8)
    #expect(page.contains("<img src=\"contact-sheet.png\"") && page.contains("sample-001.png"))
    #expect(page.contains("{\"stage\": \"affine\", \"applied\": true, \"rotate\": "))
    #expect(!page.contains("http://") && !page.contains("https://"), "the page must work offline")
  }

  @Test func previewSampleKIsShardSampleK() async throws {
    let dir = TestPaths.temporaryDirectory("preview-shards")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let spec = try PipelineSpec.load(TestPaths.pipelines + "/default.yaml")
    _ = try await Preparer.run(spec: spec, options: PrepareOptions(outputDirectory: dir + "/shards", workers: 2))
    // Each pipeline sample gives 2 training tiles: shard samples 0…3 come from samples 0 and 1.
    let fromPipeline = try await Preview.fromPipeline(spec, options: PreviewOptions(count: 2, outputDirectory: dir + "/p", panelSize: 64))
    let fromShards = try Preview.fromShards(dir + "/shards", options: PreviewOptions(count: 4, outputDirectory: dir + "/s", panelSize: 64))
    let p = try String(contentsOfFile: fromPipeline.page, encoding: .utf8)
    let s = try String(contentsOfFile: fromShards.page, encoding: .utf8)
    // The random stream key of every sample appears in both pages.
    let streams = p.components(separatedBy: "\"stream\": ").dropFirst().map { String($0.prefix(20)) }
    #expect(streams.count == 2)
    for stream in streams { #expect(s.contains("\"stream\": " + stream)) }
    #expect(fromShards.notes.first?.contains("not stored") == true)
  }

  @Test func pipelineWithoutMasksPreviewsImagesWithANote() async throws {
    let dir = TestPaths.temporaryDirectory("preview-nomask")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let yaml = dir + "/p.yaml"
    try "version: 1\nseed: 1\nsources: {images: \(TestPaths.fixtures)/cells/images/*.png}\nstages:\n  - affine: {rotate: [-5, 5]}\n"
      .write(toFile: yaml, atomically: true, encoding: .utf8)
    let r = try await Preview.fromPipeline(try PipelineSpec.load(yaml), options: PreviewOptions(count: 2, outputDirectory: dir + "/o", panelSize: 48))
    #expect(r.notes == ["This pipeline has no masks: only the image panels are shown."])
    #expect(try String(contentsOfFile: r.page, encoding: .utf8).contains("only the image panels are shown"))
  }
}
