import ArgumentParser
import SegCache
import SegCore

#if canImport(Glibc)
  import Glibc
#endif

/// The manifest limit of every command that reads a shard set.
struct ManifestFlags: ParsableArguments {
  @Option(help: ArgumentHelp(
    "Refuse shard sets whose manifest lists more samples than this (default 10000000, or UNET_MAX_SAMPLES).",
    discussion: "A manifest's counts decide what readers allocate; the check runs before any of it.",
    valueName: "n"))
  var maxSamples: Int?

  func validate() throws {
    if let maxSamples, maxSamples < 1 { throw ValidationError("--max-samples must be positive") }
  }

  var limits: ManifestLimits { maxSamples.map { ManifestLimits(maxSamples: $0) } ?? ManifestLimits() }

  /// For code that opens the shard set itself (the trainer): the limit through the environment.
  func export() {
    if let maxSamples { setenv("UNET_MAX_SAMPLES", String(maxSamples), 1) }
  }
}
