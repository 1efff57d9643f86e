import SegCore
import SegTestSupport
import Testing

/// Components by flood fill, numbered in raster order of their first pixel (the reference).
func floodFillComponents(_ v: [UInt32], width w: Int, height h: Int, eight: Bool, splitByValue: Bool) -> [UInt32] {
  var out = [UInt32](repeating: 0, count: v.count)
  var next: UInt32 = 0
  for start in v.indices where v[start] != 0 && out[start] == 0 {
    next += 1
    out[start] = next
    var stack = [start]
    while let i = stack.popLast() {
      let (y, x) = (i / w, i % w)
      for dy in -1...1 {
        for dx in -1...1 where (dx, dy) != (0, 0) && (eight || dx == 0 || dy == 0) {
          let (ny, nx) = (y + dy, x + dx)
          guard ny >= 0, ny < h, nx >= 0, nx < w else { continue }
          let j = ny * w + nx
          guard v[j] != 0, out[j] == 0, !splitByValue || v[j] == v[i] else { continue }
          out[j] = next
          stack.append(j)
        }
      }
    }
  }
  return out
}

@Suite struct ConnectedComponentsTests {
  @Test(arguments: Connectivity.allCases, [false, true])
  func equalsFloodFillOnRandomMasks(connectivity: Connectivity, splitByValue: Bool) {
    for seed in seeds(60) {
      var rng = RandomStream(seed: seed, path: [0xCC])
      let w = 1 + rng.nextInt(below: 30)
      let h = 1 + rng.nextInt(below: 30)
      let density = 0.2 + 0.6 * rng.nextDouble()
      let values = (0..<(w * h)).map { _ in rng.nextDouble() < density ? UInt32(1 + rng.nextInt(below: 3)) : 0 }
      let got = ConnectedComponents.label(values, width: w, height: h, connectivity: connectivity, splitByValue: splitByValue)
      let want = floodFillComponents(values, width: w, height: h, eight: connectivity == .eight, splitByValue: splitByValue)
      #expect(got == want, "seed \(seed), \(w)×\(h)")
    }
  }

  @Test func aUShapeJoinsLate() {
    // Two arms that meet only in the last row: provisional labels 1 and 2 must merge.
    let v: [UInt32] = [
      1, 0, 1,
      1, 0, 1,
      1, 1, 1,
    ]
    #expect(ConnectedComponents.label(v, width: 3, height: 3, connectivity: .four, splitByValue: false) == v)
  }
}
