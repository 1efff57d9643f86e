import SegCore
import SegSynth
import SegWeights

extension Bench {
  /// weight_map (../shared/bench/README.md): uint16 labels → w(x), timed from the decoded
  /// label array; plus scaling ops on 1024 × 1024 with 80, 800 and 5,000 cells.
  static var weightOps: [BenchOp] {
    var ops = [
      BenchOp(name: "weight_map", note: nil) { inputs in
        let labels = inputs.labels
        let threads = inputs.threads
        let cells = InstanceMap(mask: labels, kind: .instances).cellCount
        return ({ blackHole(WeightMap.compute(mask: labels, threads: threads)) },
                [("cells", .int(cells))])
      }
    ]
    for cells in [80, 800, 5000] {
      ops.append(BenchOp(name: "weight_map_1024_\(cells)", note: "1024 × 1024 synthetic, about \(cells) cells") { inputs in
        let radius: ClosedRange<Double> = cells <= 80 ? 12...40 : (cells <= 800 ? 5...14 : 2...6)
        let labels = SyntheticCells(width: 1024, height: 1024, cells: cells, radius: radius, minArea: 4, seed: 1).labels()
        let threads = inputs.threads
        let count = InstanceMap(mask: labels, kind: .instances).cellCount
        return ({ blackHole(WeightMap.compute(mask: labels, threads: threads)) }, [("cells", .int(count))])
      })
    }
    return ops
  }
}
