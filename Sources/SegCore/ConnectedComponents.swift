/// Pixel adjacency for connected components.
public enum Connectivity: Int, Sendable, Codable, CaseIterable {
  case four = 4
  case eight = 8
}

/// Connected-component labelling of the non-zero pixels of a mask: the one labeller of the code
/// base (cells of binary and class masks in SegWeights, segments for the Rand error in
/// SegTrain's metrics).
public enum ConnectedComponents {
  /// Labels components 1...N in raster order of their first pixel; 0 stays background.
  ///
  /// - Parameters:
  ///   - splitByValue: when true, neighbours join only if they carry the same value (one
  ///     component per class region); when false, any two non-zero neighbours join.
  /// - Complexity: O(pixels), two passes with a union–find over provisional labels.
  public static func label(
    _ values: [UInt32], width: Int, height: Int, connectivity: Connectivity, splitByValue: Bool
  ) -> [UInt32] {
    let n = width * height
    var provisional = [UInt32](repeating: 0, count: n)
    var parent: [UInt32] = [0]  // parent[0] unused
    func find(_ x: UInt32) -> UInt32 {
      var r = x
      while parent[Int(r)] != r { r = parent[Int(r)] }
      var c = x
      while parent[Int(c)] != r {
        let next = parent[Int(c)]
        parent[Int(c)] = r
        c = next
      }
      return r
    }
    func union(_ a: UInt32, _ b: UInt32) -> UInt32 {
      let ra = find(a)
      let rb = find(b)
      if ra == rb { return ra }
      let (lo, hi) = ra < rb ? (ra, rb) : (rb, ra)
      parent[Int(hi)] = lo
      return lo
    }
    for y in 0..<height {
      for x in 0..<width {
        let i = y * width + x
        let v = values[i]
        guard v != 0 else { continue }
        var label: UInt32 = 0
        func consider(_ j: Int) {
          let u = values[j]
          guard u != 0, !splitByValue || u == v else { return }
          let l = provisional[j]
          label = label == 0 ? find(l) : union(label, l)
        }
        if x > 0 { consider(i - 1) }
        if y > 0 {
          consider(i - width)
          if connectivity == .eight {
            if x > 0 { consider(i - width - 1) }
            if x + 1 < width { consider(i - width + 1) }
          }
        }
        if label == 0 {
          label = UInt32(parent.count)
          parent.append(label)
        }
        provisional[i] = label
      }
    }
    // Final labels: consecutive in order of first appearance.
    var final = [UInt32](repeating: 0, count: parent.count)
    var next: UInt32 = 1
    for i in 0..<n where provisional[i] != 0 {
      let root = find(provisional[i])
      if final[Int(root)] == 0 {
        final[Int(root)] = next
        next += 1
      }
      provisional[i] = final[Int(root)]
    }
    return provisional
  }
}
