import SegCore
import SegIO
import SegSynth
import SegTestSupport
import SegWeights
import Testing

#if canImport(Glibc)
  import Glibc
#endif

@Suite struct ReferenceEDTTests {
  @Test func felzenszwalbEqualsBruteForce() {
    for seed in seeds(30) {
      var rng = RandomStream(seed: seed)
      let w = 5 + rng.nextInt(below: 20)
      let h = 5 + rng.nextInt(below: 20)
      let feature = (0..<(w * h)).map { _ in rng.nextDouble() < 0.05 }
      #expect(ReferenceWeights.squaredEDT(feature, width: w, height: h) == ReferenceWeights.bruteForceSquaredEDT(feature, width: w, height: h))
    }
  }
}

@Suite struct WeightMapTests {
  /// The fast border term against one exact EDT per cell, over many random label maps:
  /// d1 and d2 must agree exactly wherever d1 + d2 is within the cut-off (the only pixels
  /// whose term is not negligible); elsewhere d2 may be reported as "beyond" but never less
  /// than the truth.
  @Test func nearestTwoIsExactWithinTheCutoff() {
    var compared = 0
    for seed in seeds(60) {
      var rng = RandomStream(seed: seed, path: [11])
      let w = 20 + rng.nextInt(below: 60)
      let h = 20 + rng.nextInt(below: 60)
      let cells = rng.nextInt(below: 12)
      let ids = SyntheticCells(width: w, height: h, cells: cells, radius: 2...9, minArea: 1, seed: seed).labels().labelSamples()
      // Random non-consecutive ids so nothing relies on 1...N numbering.
      let shuffled = ids.map { $0 == 0 ? 0 : $0 &* 2_654_435_761 | 1 }
      let limit = 30.0
      let fast = BorderTerm.nearestTwo(ids: shuffled, width: w, height: h, limit: limit, threads: 1 + Int(seed % 2))
      let (d1, d2) = ReferenceWeights.nearestTwo(ids: shuffled, width: w, height: h)
      var wrong = 0
      for i in 0..<(w * h) {
        let got1 = fast[i].d1 == NearestTwo.none ? Double.infinity : Double(fast[i].d1).squareRoot()
        let got2 = fast[i].d2 == NearestTwo.none ? Double.infinity : Double(fast[i].d2).squareRoot()
        if d1[i] + d2[i] <= limit {
          compared += 1
          if got1 != d1[i] || got2 != d2[i] { wrong += 1 }
        } else if got2 < d2[i] {
          wrong += 1
        }
      }
      #expect(wrong == 0, "seed \(seed): \(wrong) pixels differ")
    }
    #expect(compared > 10_000)
  }

  /// The background-only variant skips cell pixels but gives the same values elsewhere.
  @Test func backgroundOnlyAgreesOnBackground() {
    for seed in seeds(20) {
      let ids = SyntheticCells(width: 70, height: 50, cells: 10, radius: 3...9, minArea: 1, seed: seed).labels().labelSamples()
      let all = BorderTerm.nearestTwo(ids: ids, width: 70, height: 50, limit: 28)
      let bg = BorderTerm.nearestTwo(ids: ids, width: 70, height: 50, limit: 28, backgroundOnly: true)
      for i in 0..<ids.count {
        if ids[i] == 0 {
          #expect(bg[i].d1 == all[i].d1 && (bg[i].d2 == all[i].d2 || Double(all[i].d1).squareRoot() + Double(all[i].d2).squareRoot() > 28))
        } else {
          #expect(bg[i] == NearestTwo())
        }
      }
    }
  }

  /// The shared numerical reference (scipy, one EDT per cell): within 1e-3 on every pixel.
  @Test(.enabled(if: TestPaths.shared != nil, "../shared is absent"))
  func matchesTheSharedReference() throws {
    let shared = try #require(TestPaths.shared)
    let labels = try ImageDecoder.read(shared + "/bench/reference/weightmap_ref_input.png").image
    let expected = try NpyArray.decode(try FileIO.read(shared + "/bench/reference/weightmap_ref_output.npy")).doubles()
    for threads in [1, 2] {
      let got = WeightMap.compute(mask: labels, threads: threads).floatSamples()
      let diff = maxAbsDifference(got, expected)
      #expect(diff.value <= 1e-3, "worst |w − w_ref| = \(diff.value) at pixel \(diff.index)")
      #expect(diff.value <= 1e-5, "float32 output should be far inside the tolerance: \(diff.value)")
    }
  }

  @Test func noCellsGivesClassBalanceOnly() {
    let empty = Image(width: 9, height: 7, type: .uint16)
    let w = WeightMap.compute(mask: empty).floatSamples()
    // One class present: N / (2 · N) = 0.5 everywhere.
    #expect(w.allSatisfy { $0 == 0.5 })
    let none = WeightMap.compute(mask: empty, parameters: .init(classBalance: .none)).floatSamples()
    #expect(none.allSatisfy { $0 == 1 })
  }

  @Test func oneCellHasNoBorderTerm() {
    var ids = [UInt16](repeating: 0, count: 100)
    for i in [44, 45, 54, 55] { ids[i] = 7 }
    let w = WeightMap.compute(mask: Image(width: 10, height: 10, pixels: ids), parameters: .init(classBalance: .none)).floatSamples()
    #expect(w.allSatisfy { $0 == 1 })
  }

  @Test func touchingCellsWithNoGap() {
    // Two cells side by side: every background pixel's d1 + d2 is exact; cell pixels get w_c.
    let w = 12
    let h = 6
    var ids = [UInt32](repeating: 0, count: w * h)
    for y in 1..<5 {
      for x in 2..<6 { ids[y * w + x] = 1 }
      for x in 6..<10 { ids[y * w + x] = 2 }
    }
    let mask = Image(width: w, height: h, pixels: ids)
    let got = WeightMap.compute(mask: mask, parameters: .init(classBalance: .none, maskKind: .instances)).floatSamples()
    let ref = ReferenceWeights.weightMap(ids: ids, width: w, height: h, classWeights: [1, 1])
    #expect(maxAbsDifference(got, ref).value < 1e-5)
    // The pixel above the contact point (6, 0): d1 = 1 (cell 2 below), d2 = √2 (cell 1's
    // corner pixel (5, 1)).
    let above = got[0 * w + 6]
    let s = 1 + 2.0.squareRoot()
    #expect(abs(Double(above) - (1 + 10 * exp(-s * s / 50))) < 1e-5)
    // "everywhere": a cell pixel at the contact has d1 = 0, d2 = 1.
    let all = WeightMap.compute(mask: mask, parameters: .init(classBalance: .none, border: .everywhere, maskKind: .instances)).floatSamples()
    #expect(abs(Double(all[2 * w + 5]) - (1 + 10 * exp(-1.0 / 50))) < 1e-5)
  }

  @Test func onePixelImage() {
    for v: UInt16 in [0, 5] {
      let w = WeightMap.compute(mask: Image(width: 1, height: 1, pixels: [UInt16](repeating: v, count: 1))).floatSamples()
      #expect(w == [0.5])
    }
  }

  @Test func idsAbove65535InA32BitLabelTIFF() throws {
    let labels = try ImageDecoder.read(TestPaths.fixtures + "/tiff/u32-labels.tif").image
    #expect((labels.range?.max ?? 0) > 65535)
    let ids = labels.labelSamples()
    let got = WeightMap.compute(mask: labels, parameters: .init(maskKind: .instances)).floatSamples()
    let ref = ReferenceWeights.weightMap(ids: ids, width: labels.width, height: labels.height)
    #expect(maxAbsDifference(got, ref).value < 1e-5)
    // Folding the ids to 16 bits would merge cells: make sure the map depends on the full id.
    let folded = WeightMap.compute(mask: Image(width: labels.width, height: labels.height, pixels: ids.map { $0 == 0 ? UInt32(0) : 1 }),
                                   parameters: .init(maskKind: .instances)).floatSamples()
    #expect(folded != got)
  }

  @Test func oneIdWithSevenPiecesIsOneCell() {
    // Id 3 in seven separate squares, id 9 in one; as instances the seven are one cell.
    let w = 60
    let h = 20
    var ids = [UInt32](repeating: 0, count: w * h)
    for piece in 0..<7 {
      for y in 2..<5 { for x in (piece * 8 + 1)..<(piece * 8 + 4) { ids[y * w + x] = 3 } }
    }
    for y in 12..<16 { for x in 10..<40 { ids[y * w + x] = 9 } }
    let mask = Image(width: w, height: h, pixels: ids)
    let instances = InstanceMap(mask: mask, kind: .instances)
    #expect(instances.cellCount == 2)
    let got = WeightMap.compute(instances: instances, parameters: .init()).floatSamples()
    #expect(maxAbsDifference(got, ReferenceWeights.weightMap(ids: ids, width: w, height: h)).value < 1e-5)
    // Between two pieces of the same id there is no "second cell" nearby: only distance to
    // id 9 counts, so the term there is far below what two different cells would give.
    let between = got[3 * w + 5]
    let split = ConnectedComponents.label(ids, width: w, height: h, connectivity: .four, splitByValue: false)
    let asPieces = ReferenceWeights.weightMap(ids: split, width: w, height: h)[3 * w + 5]
    #expect(Double(between) < asPieces - 1)
  }

  @Test func fiveThousandCellsMatchTheReference() {
    // 5,000 cells with distinct ids on 600 × 600: a grid of 4 × 4 squares with 1-px gaps and
    // random jitter of the gaps (some squares touch). The reference runs one EDT per cell on
    // the cell's box grown by 40 px, which is exact out to the cut-off (≈ 29 px).
    let w = 600
    var ids = [UInt32](repeating: 0, count: w * w)
    var rng = RandomStream(seed: 5)
    var next: UInt32 = 1
    for gy in 0..<71 {
      for gx in 0..<71 where next <= 5000 {
        let size = 3 + rng.nextInt(below: 4)
        let ox = gx * 8 + rng.nextInt(below: 3)
        let oy = gy * 8 + rng.nextInt(below: 3)
        for y in oy..<min(w, oy + size) { for x in ox..<min(w, ox + size) { ids[y * w + x] = next } }
        next += 1
      }
    }
    let cells = Image(width: w, height: w, pixels: ids)
    let remaining = Set(ids).count - 1
    #expect(remaining >= 4900, "\(remaining) cells survived")
    let got = WeightMap.compute(mask: cells, parameters: .init(maskKind: .instances), threads: 2).floatSamples()
    let ref = ReferenceWeights.weightMap(ids: ids, width: w, height: w, margin: 40)
    #expect(maxAbsDifference(got, ref).value < 1e-4)
  }

  @Test func binaryMasksUseFourConnectedComponents() {
    // Two foreground blobs touching only diagonally: 4-connectivity → 2 cells, 8 → 1.
    let w = 8
    var v = [UInt8](repeating: 0, count: 64)
    for (x, y) in [(2, 2), (3, 2), (2, 3), (3, 3), (4, 4), (5, 4), (4, 5), (5, 5)] { v[y * w + x] = 255 }
    let mask = Image(width: 8, height: 8, pixels: v)
    #expect(InstanceMap(mask: mask).kind == .binary)
    #expect(InstanceMap(mask: mask).cellCount == 2)
    #expect(InstanceMap(mask: mask, connectivity: .eight).cellCount == 1)
    let four = WeightMap.compute(mask: mask).floatSamples()
    let eight = WeightMap.compute(mask: mask, parameters: .init(connectivity: .eight)).floatSamples()
    #expect(four != eight)
  }

  @Test func classBalanceModes() {
    let mask = Image(width: 4, height: 1, pixels: [UInt8(0), 0, 0, 2])
    let image = WeightMap.compute(mask: mask, parameters: .init(w0: 0)).floatSamples()
    #expect(image == [Float(4.0 / 6), 4.0 / 6, 4.0 / 6, 2])
    var freq = ClassFrequencies()
    freq.add(classes: [0, 1, 1, 1])
    let dataset = WeightMap.compute(mask: mask, parameters: .init(w0: 0, classBalance: .dataset(freq))).floatSamples()
    #expect(dataset == [2, 2, 2, Float(4.0 / 6)])
    let fixed = WeightMap.compute(mask: mask, parameters: .init(w0: 0, classBalance: .fixed([0.25, 3]))).floatSamples()
    #expect(fixed == [0.25, 0.25, 0.25, 3])
    // Class masks: K = max class + 1, cells are components per class.
    let classes = Image(width: 5, height: 1, pixels: [UInt8(1), 1, 0, 2, 2])
    let inst = InstanceMap(mask: classes, kind: .classes)
    #expect(inst.cellCount == 2 && inst.classes == [1, 1, 0, 2, 2])
    let wc = WeightMap.classWeights(instances: inst, parameters: .init(maskKind: .classes))
    #expect(wc.count == 3 && abs(wc[0] - 5.0 / 3) < 1e-12 && abs(wc[1] - 5.0 / 6) < 1e-12)
  }
}
