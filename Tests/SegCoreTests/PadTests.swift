import SegCore
import SegTestSupport
import Testing

@Suite struct PadTests {
  @Test func reflectIndexMatchesNumpy() {
    // np.pad([1, 2, 3], 5, mode="reflect") → [2, 1, 2, 3, 2, 1, 2, 3, 2, 1, 2, 3, 2]
    let a = [1, 2, 3]
    #expect((-5...7).map { a[Pad.reflectIndex($0, 3)] } == [2, 1, 2, 3, 2, 1, 2, 3, 2, 1, 2, 3, 2])
    for n in 1...7 {
      for i in -40...40 { #expect(Pad.reflectIndex(i, n) == ReferenceKernels.reflectIndex(i, n), "i \(i) n \(n)") }
    }
  }

  @Test func padEqualsNumpyReflect() {
    // np.pad([1, 2, 3, 4], (3, 6), mode="reflect")
    let row = Image(width: 4, height: 1, pixels: [Float(1), 2, 3, 4])
    let padded = Pad.reflect(row, top: 0, bottom: 0, left: 3, right: 6)
    #expect(padded.floatSamples() == [4, 3, 2, 1, 2, 3, 4, 3, 2, 1, 2, 3, 4])
    // np.pad(np.arange(6).reshape(2, 3), ((2, 3), (4, 1)), mode="reflect")
    let grid = Image(width: 3, height: 2, pixels: (0..<6).map { UInt16($0) })
    let p = Pad.reflect(grid, top: 2, bottom: 3, left: 4, right: 1)
    let even: [UInt32] = [0, 1, 2, 1, 0, 1, 2, 1]
    let odd: [UInt32] = [3, 4, 5, 4, 3, 4, 5, 4]
    #expect(p.width == 8 && p.height == 7 && p.pixelType == .uint16)
    #expect(p.labelSamples() == even + odd + even + odd + even + odd + even)
    // np.pad([7], 2, mode="reflect") → [7, 7, 7, 7, 7]
    #expect(Pad.reflect(Image(width: 1, height: 1, pixels: [Float(7)]), margin: 2).floatSamples() == [Float](repeating: 7, count: 25))
  }

  @Test func padAgreesWithTheReferenceForManyShapes() {
    for seed in seeds(40) {
      var rng = RandomStream(seed: seed)
      let w = 1 + rng.nextInt(below: 9)
      let h = 1 + rng.nextInt(below: 9)
      let m = (0..<4).map { _ in rng.nextInt(below: 25) }
      let image = Image(width: w, height: h, channels: 2, pixels: (0..<(2 * w * h)).map { Float($0) })
      let p = Pad.reflect(image, top: m[0], bottom: m[1], left: m[2], right: m[3])
      for c in 0..<2 {
        for y in 0..<p.height {
          for x in 0..<p.width {
            let sy = ReferenceKernels.reflectIndex(y - m[0], h)
            let sx = ReferenceKernels.reflectIndex(x - m[2], w)
            #expect(p.value(channel: c, y: y, x: x) == image.value(channel: c, y: sy, x: sx))
          }
        }
      }
    }
  }

  /// Larger images with every margin shorter than its side (the usual case: one reflection)
  /// against the reference, for every pixel type.
  @Test func singleReflectionAgreesWithTheReferenceForEveryPixelType() {
    for seed in seeds(60) {
      var rng = RandomStream(seed: seed)
      let w = 2 + rng.nextInt(below: 40)
      let h = 2 + rng.nextInt(below: 40)
      let m = [rng.nextInt(below: h), rng.nextInt(below: h), rng.nextInt(below: w), rng.nextInt(below: w)]
      let n = 3 * w * h
      let images = [
        Image(width: w, height: h, channels: 3, pixels: (0..<n).map { Float($0) }),
        Image(width: w, height: h, channels: 3, pixels: (0..<n).map { UInt8(truncatingIfNeeded: $0 &* 7) }),
        Image(width: w, height: h, channels: 3, pixels: (0..<n).map { UInt16(truncatingIfNeeded: $0) }),
        Image(width: w, height: h, channels: 3, pixels: (0..<n).map { UInt32($0) }),
      ]
      for image in images {
        let p = Pad.reflect(image, top: m[0], bottom: m[1], left: m[2], right: m[3])
        #expect(p.width == w + m[2] + m[3] && p.height == h + m[0] + m[1] && p.pixelType == image.pixelType)
        var mismatches = 0
        for c in 0..<3 {
          for y in 0..<p.height {
            for x in 0..<p.width {
              let sy = ReferenceKernels.reflectIndex(y - m[0], h)
              let sx = ReferenceKernels.reflectIndex(x - m[2], w)
              if p.value(channel: c, y: y, x: x) != image.value(channel: c, y: sy, x: sx) { mismatches += 1 }
            }
          }
        }
        #expect(mismatches == 0, "\(image.pixelType) \(w)×\(h) margins \(m)")
      }
    }
  }
}
