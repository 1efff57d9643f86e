import SegCore
import SegTestSupport
import Testing

@Suite struct RandomStreamTests {
  @Test func sameKeyGivesTheSameSequence() {
    var a = RandomStream(seed: 42, path: [1, 2, 3])
    var b = RandomStream(seed: 42, path: [1, 2, 3])
    for _ in 0..<1000 { #expect(a.next() == b.next()) }
  }

  @Test func anyPositionCanBeReachedDirectly() {
    var a = RandomStream(seed: 9, path: [4])
    for _ in 0..<57 { _ = a.next() }
    var b = RandomStream(key: RandomStream(seed: 9, path: [4]).key, counter: 57)
    #expect(a.next() == b.next())
  }

  @Test func pathsAreOrderSensitiveAndDistinct() {
    var seen = Set<UInt64>()
    for i in 0..<20 as Range<UInt64> {
      for j in 0..<20 as Range<UInt64> {
        var s = RandomStream(seed: 1, path: [i, j])
        seen.insert(s.next())
      }
    }
    #expect(seen.count == 400)
    var x = RandomStream(seed: 1, path: [1, 23])
    var y = RandomStream(seed: 1, path: [12, 3])
    #expect(x.next() != y.next())
    var c1 = RandomStream(seed: 5, path: [1]).child(2)
    var c2 = RandomStream(seed: 5, path: [1, 2])
    #expect(c1.next() == c2.next())
  }

  @Test func uniformMomentsMatchTheory() {
    var r = RandomStream(seed: 123)
    let n = 200_000
    var sum = 0.0
    var sq = 0.0
    for _ in 0..<n {
      let u = r.nextDouble()
      #expect(u >= 0 && u < 1)
      sum += u
      sq += u * u
    }
    let mean = sum / Double(n)
    let variance = sq / Double(n) - mean * mean
    // standard error of the mean is sqrt(1/12/n) ≈ 0.00065; allow 5 of them
    #expect(abs(mean - 0.5) < 0.0033)
    #expect(abs(variance - 1.0 / 12) < 0.001)
  }

  @Test func gaussianMomentsMatchTheory() {
    var r = RandomStream(seed: 77)
    let n = 200_000
    var sum = 0.0
    var sq = 0.0
    var quart = 0.0
    for _ in 0..<n {
      let g = r.gaussian()
      sum += g
      sq += g * g
      quart += g * g * g * g
    }
    let mean = sum / Double(n)
    #expect(abs(mean) < 0.012)
    #expect(abs(sq / Double(n) - 1) < 0.015)
    #expect(abs(quart / Double(n) - 3) < 0.1)  // kurtosis of a normal
  }

  @Test func boundedIntegersAreUnbiased() {
    var r = RandomStream(seed: 5)
    var counts = [Int](repeating: 0, count: 6)
    let n = 60_000
    for _ in 0..<n { counts[r.nextInt(below: 6)] += 1 }
    // chi-square with 5 degrees of freedom: 20.5 is the 0.999 quantile
    let expected = Double(n) / 6
    let chi2 = counts.reduce(0.0) { $0 + (Double($1) - expected) * (Double($1) - expected) / expected }
    #expect(chi2 < 20.5, "\(counts)")
  }

  @Test func shuffleIsAPermutation() {
    for seed in seeds(50) {
      var r = RandomStream(seed: seed)
      var a = Array(0..<100)
      r.shuffle(&a)
      #expect(a.sorted() == Array(0..<100))
    }
  }
}
