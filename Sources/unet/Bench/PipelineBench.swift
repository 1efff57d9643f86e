import Foundation
import SegCore
import SegPipeline

#if canImport(Glibc)
  import Glibc
#endif

/// Peak resident memory of this process so far, in MiB (getrusage).
func peakResidentMiB() -> Double {
  var usage = rusage()
  getrusage(RUSAGE_SELF.rawValue, &usage)
  return Double(usage.ru_maxrss) / 1024  // ru_maxrss is in KiB on Linux
}

/// Times a whole pipeline: samples per second through the engine with a consumer that only
/// touches the data, and the peak resident memory.
enum PipelineBench {
  static func run(pipeline: String, source: String?, samples: Int?, workers: Int, json: Bool) async throws {
    var spec = try PipelineSpec.load(pipeline)
    if let source { spec = spec.overridingSource(source) }
    let engine = try await PipelineEngine(spec: spec).preparingDatasetStatistics(workers: workers)
    let count = min(samples ?? engine.sampleCount, Int.max)
    // More samples than the pipeline makes: go round again (same samples, fresh work).
    let indices = (0..<count).map { $0 % max(engine.sampleCount, 1) }
    let start = MonotonicClock.milliseconds()
    var checksum: Float = 0
    try await engine.run(indices: indices, workers: workers) { s in
      checksum += s.sample.image.floatSamples().first ?? 0
    }
    let seconds = (MonotonicClock.milliseconds() - start) / 1000
    blackHole(checksum)
    let rate = Double(count) / max(seconds, 1e-9)
    let fields: [(String, JSONValue)] = [
      ("op", "pipeline"), ("impl", "unet"), ("pipeline", .string(pipeline)), ("samples", .int(count)),
      ("workers", .int(workers)), ("seconds", .double((seconds * 1000).rounded() / 1000)),
      ("samples_per_s", .double((rate * 100).rounded() / 100)), ("peak_rss_mib", .double(peakResidentMiB().rounded())),
    ]
    if json {
      print(JSONValue.object(fields).serialized())
    } else {
      print(String(format: "pipeline %@: %d samples, %d workers, %.2f s, %.2f samples/s, peak RSS %.0f MiB",
                   pipeline, count, workers, seconds, rate, peakResidentMiB()))
    }
  }
}
