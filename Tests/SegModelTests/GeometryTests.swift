import SegModel
import Testing

@Suite struct NetworkGeometryTests {
  @Test func thePapersNumbers() {
    let g = NetworkGeometry(depth: 4, padding: .valid)
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
      let g = NetworkGeometry(depth: depth, padding: .valid)
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
    let g = NetworkGeometry(depth: 4, padding: .same)
    #expect(g.outputSize(forInput: 256) == 256)
    #expect(g.outputSize(forInput: 250) == nil)
    #expect(g.nearestInput(forOutputAtLeast: 250).input == 256)
    #expect(g.contextMargin == 0)
  }
}

