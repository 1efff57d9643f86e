import SegCore
import SegTestSupport
import SegTiling
import Testing

@Suite struct UNetGeometryTests {
  @Test func thePapersNumbers() {
    let g = UNetGeometry(depth: 4, padding: .valid)
    #expect(g.outputSize(forInput: 572) == 388)
    #expect(g.contextMargin == 92)
    #expect(g.inputSize(forOutput: 388) == 572)
    #expect(g.outputSize(forInput: 571) == nil && g.outputSize(forInput: 573) == nil)
    // Legal inputs are 16 apart for depth 4 (each pooled size must be even).
    let legal = g.legalInputs(upTo: 700)
    #expect(legal.contains(572) && legal.contains(188) && legal.contains(700 - (700 - 572) % 16))
    #expect(zip(legal, legal.dropFirst()).allSatisfy { $1 - $0 == 16 })
    #expect(legal.first == 188)  // output 4: the smallest input with a positive bottom level
    #expect(g.outputSize(forInput: 188) == 4)
    let near = g.nearestInput(forOutputAtLeast: 300)
    #expect(near.output >= 300 && g.outputSize(forInput: near.input) == near.output)
    #expect(g.nearestInput(forOutputAtLeast: near.output + 1).input == near.input + 16)
  }

  @Test func validSizesMatchALayerByLayerSimulation() {
    for depth in 1...5 {
      let g = UNetGeometry(depth: depth, padding: .valid)
      for n in 1...400 {
        // Simulate: two convs (−4), pool (must be even), …, bottom, then up (×2) and −4.
        var size = n
        var ok = true
        for _ in 0..<depth {
          size -= 4
          if size <= 0 || size % 2 != 0 { ok = false; break }
          size /= 2
        }
        if ok { size -= 4; ok = size > 0 }
        if ok { for _ in 0..<depth { size = 2 * size - 4; if size <= 0 { ok = false } } }
        #expect(g.outputSize(forInput: n) == (ok ? size : nil), "depth \(depth) input \(n)")
        if ok { #expect(g.inputSize(forOutput: size) == n) }
      }
    }
  }

  @Test func sameSizes() {
    let g = UNetGeometry(depth: 4, padding: .same)
    #expect(g.outputSize(forInput: 256) == 256)
    #expect(g.outputSize(forInput: 250) == nil)
    #expect(g.nearestInput(forOutputAtLeast: 250).input == 256)
    #expect(g.contextMargin == 0)
  }
}

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
