import SegCore
import SegTestSupport
import SegTiling
import Testing

@Suite struct OverlapTileTests {
  /// tile → identity network (the centre crop of each input tile) → stitch gives the input
  /// back exactly, for sizes that do and do not divide evenly, and images smaller than a tile.
  @Test func tileAndStitchReproduceTheImage() {
    for (w, h, out, margin) in [(96, 96, 32, 8), (100, 77, 32, 92), (20, 13, 32, 5), (64, 64, 64, 0), (65, 200, 17, 3)] {
      let image = Image(width: w, height: h, channels: 2, pixels: (0..<(2 * w * h)).map { Float($0 % 997) })
      let plan = OverlapTilePlan(imageWidth: w, imageHeight: h, tileOutput: out, margin: margin)
      let outputs = plan.tiles.map { tile -> Image in
        let input = plan.input(tile, of: image)
        #expect(input.width == out + 2 * margin && input.height == out + 2 * margin)
        return OverlapTilePlan.crop(input, x: margin, y: margin, width: out, height: out)
      }
      #expect(plan.stitch(outputs) == image, "\(w)×\(h) tiles \(out) margin \(margin)")
      // Every pixel is covered, and tiles stay inside the image when it is big enough.
      if w >= out && h >= out {
        #expect(plan.tiles.allSatisfy { $0.x >= 0 && $0.y >= 0 && $0.x + out <= w && $0.y + out <= h })
      }
    }
  }

  @Test func inputWindowsAreMirrorPadded() {
    // A 1-D ramp: the context left of x = 0 is the reflection 1, 2, 3, …
    let ramp = Image(width: 10, height: 1, pixels: (0..<10).map { Float($0) })
    let w = OverlapTilePlan.window(ramp, x: -3, y: 0, width: 16, height: 1)
    #expect(w.floatSamples() == [3, 2, 1, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 8, 7, 6])
  }
}
