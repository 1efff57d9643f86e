import SegCore
import SegTestSupport
import Synchronization
import Testing

@Suite struct ParallelTests {
  @Test(arguments: [1, 2, 3, 8])
  func forEachRunsEveryTaskOnceOnAValidWorker(workers: Int) {
    for tasks in [0, 1, 5, 64] {
      var hits = [Int](repeating: 0, count: tasks)
      var owner = [Int](repeating: -1, count: tasks)
      hits.withUnsafeMutableBufferPointer { h in
        owner.withUnsafeMutableBufferPointer { o in
          let hs = SharedBuffer(h), os = SharedBuffer(o)
          // Task t writes only element t of both buffers.
          Parallel.forEach(tasks: tasks, workers: workers) { worker, t in
            hs[t] += 1
            os[t] = worker
          }
        }
      }
      #expect(hits == [Int](repeating: 1, count: tasks), "tasks \(tasks), workers \(workers)")
      #expect(owner.allSatisfy { $0 >= 0 && $0 < max(1, min(workers, tasks)) })
    }
  }

  @Test func forEachBlockHandsOutFixedContiguousBlocks() {
    let seen = Mutex<[Int: Range<Int>]>([:])
    Parallel.forEachBlock(tasks: 10, workers: 3) { worker, range in
      seen.withLock { $0[worker] = range }
    }
    #expect(seen.withLock { $0 } == [0: 0..<3, 1: 3..<6, 2: 6..<10])
    let one = Mutex<[Range<Int>]>([])
    Parallel.forEachBlock(tasks: 4, workers: 1) { _, range in one.withLock { $0.append(range) } }
    #expect(one.withLock { $0 } == [0..<4])
    Parallel.forEachBlock(tasks: 0, workers: 4) { _, _ in Issue.record("no tasks, no call") }
  }

  @Test func rangesCoverTheCountWithoutGapsOrOverlap() {
    for count in [0, 1, 7, 100, 1 << 17] {
      for parts in [1, 3, 16] {
        for minimum in [1, 10, 1 << 16] {
          let r = Parallel.ranges(count, parts: parts, minimum: minimum)
          #expect(r.first?.lowerBound ?? 0 == 0 && r.last?.upperBound ?? 0 == count)
          #expect(zip(r, r.dropFirst()).allSatisfy { $0.upperBound == $1.lowerBound })
          #expect(r.count <= parts && r.allSatisfy { !$0.isEmpty })
          if r.count > 1 { #expect(r.allSatisfy { $0.count >= minimum }) }
        }
      }
      // One range of the split is the same whether asked for alone or with the others.
      #expect((0..<4).map { Parallel.range($0, of: 4, count: count) }.filter { !$0.isEmpty } == Parallel.ranges(count, parts: 4))
    }
  }

  @Test func computeThreadsOverrideIsPerTask() {
    let before = ComputeThreads.count
    ComputeThreads.withCount(3) {
      #expect(ComputeThreads.count == 3)
      ComputeThreads.withCount(0) { #expect(ComputeThreads.count == 1, "below 1 means 1") }
    }
    #expect(ComputeThreads.count == before)
  }
}
