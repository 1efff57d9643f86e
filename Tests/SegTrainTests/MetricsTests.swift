import SegTrain
import Testing

/// Dice, IoU, pixel error, connected components and the ISBI Rand error on hand-made cases.
struct MetricsTests {
  @Test func diceIoUAndPixelError() {
    let s = SegmentationMetrics.scores(predicted: [0, 1, 1, 0], truth: [0, 1, 0, 0], classes: 3)
    // Class 1: |P ∩ T| = 1, |P| = 2, |T| = 1 → Dice 2/3, IoU 1/2.
    #expect(s.dice[1].map { abs($0 - 2.0 / 3) < 1e-12 } == true)
    #expect(s.iou[1].map { abs($0 - 0.5) < 1e-12 } == true)
    // Class 0: |P ∩ T| = 2, |P| = 2, |T| = 3 → Dice 4/5, IoU 2/3.
    #expect(s.dice[0].map { abs($0 - 0.8) < 1e-12 } == true)
    #expect(s.iou[0].map { abs($0 - 2.0 / 3) < 1e-12 } == true)
    // Class 2 appears nowhere: undefined.
    #expect(s.dice[2] == nil && s.iou[2] == nil)
    #expect(s.pixelError == 0.25)
    #expect(SegmentationScores.mean(s.dice, classes: 1..<3).map { abs($0 - 2.0 / 3) < 1e-12 } == true)
  }

  @Test func argmaxOfProbabilities() {
    let p = Tensor(shape: TensorShape(n: 1, c: 3, h: 1, w: 3), data: [0.2, 0.5, 0.3, 0.7, 0.2, 0.3, 0.1, 0.3, 0.4])
    #expect(SegmentationMetrics.argmax(p) == [1, 0, 2])
  }

  @Test func connectedComponentsUseFourConnectivity() {
    // Diagonal neighbours are separate; a U shape is one component (labels merge).
    let m: [[Int]] = [
      [1, 0, 0, 1, 0, 1],
      [0, 1, 0, 1, 0, 1],
      [0, 0, 0, 1, 1, 1],
    ]
    let (labels, count) = SegmentationMetrics.connectedComponents(m.flatMap { $0.map { $0 == 1 } }, width: 6, height: 3)
    #expect(count == 3)
    // Labels in raster order of each component's first pixel; the U is one component.
    #expect(labels == [1, 0, 0, 2, 0, 2, 0, 3, 0, 2, 0, 2, 0, 0, 0, 2, 2, 2])
  }

  @Test func randErrorOnHandMadeCases() {
    // Identical segmentations: no error.
    let t: [Int32] = [1, 1, 0, 2, 2]
    #expect(SegmentationMetrics.randError(truth: t, proposal: t).error < 1e-12)
    // Split: one true segment of 4 pixels proposed as two of 2 → P = 1, R = ½, F = 2/3.
    let split = SegmentationMetrics.randError(truth: [1, 1, 1, 1], proposal: [1, 1, 2, 2])
    #expect(abs(split.precision - 1) < 1e-12 && abs(split.recall - 0.5) < 1e-12)
    #expect(abs(split.error - 1.0 / 3) < 1e-12)
    // Merge: two true segments of 2 proposed as one of 4 → P = ½, R = 1, F = 2/3.
    let merge = SegmentationMetrics.randError(truth: [1, 1, 2, 2], proposal: [1, 1, 1, 1])
    #expect(abs(merge.precision - 0.5) < 1e-12 && abs(merge.recall - 1) < 1e-12)
    // Proposal background inside true foreground: singletons. Σp² = ¼ + ½/4, Σa² = 1,
    // Σb² = ¼ + ½/4 → P = 1, R = 0.375, F = 0.75/1.375.
    let bg = SegmentationMetrics.randError(truth: [1, 1, 1, 1], proposal: [1, 1, 0, 0])
    #expect(abs(bg.recall - 0.375) < 1e-12 && abs(bg.fScore - 0.75 / 1.375) < 1e-12)
    // Pixels where the truth is background do not count, whatever the proposal says there.
    let restricted = SegmentationMetrics.randError(truth: [1, 1, 1, 1, 0, 0], proposal: [1, 1, 2, 2, 3, 1])
    #expect(abs(restricted.error - split.error) < 1e-12)
  }

  @Test func randErrorOfMasks() {
    // Truth: two cells separated by a membrane column; proposal misses the membrane (merge).
    let w = 5, h = 2
    let truth = [true, true, false, true, true, true, true, false, true, true]
    let merged = [Bool](repeating: true, count: w * h)
    let s = SegmentationMetrics.randError(truthMask: truth, proposalMask: merged, width: w, height: h)
    // Two true segments of 4 pixels each, one proposed segment: P = ½, R = 1.
    #expect(abs(s.precision - 0.5) < 1e-12 && abs(s.recall - 1) < 1e-12)
    #expect(SegmentationMetrics.randError(truthMask: truth, proposalMask: truth, width: w, height: h).error < 1e-12)
  }
}
