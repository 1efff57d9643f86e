import SegCore

/// The codes of ``CacheError``.
public enum CacheErrorCode: String, CaseIterable, ErrorCode {
  /// No manifest.json in the folder.
  case missingManifest
  /// The manifest is not valid JSON of our format.
  case badManifest
  /// A format version this unet does not read.
  case unsupportedVersion
  /// A shard the manifest lists is missing.
  case missingShard
  /// A shard's size or SHA-256 differs from the manifest.
  case checksumMismatch
  /// A file ends early.
  case truncated
  /// A header or member is damaged.
  case corrupt
  /// A member is not what the manifest says (wrong name, dtype or shape).
  case badMember
  /// Another process is writing the shard folder.
  case locked
  /// A count or size above a resource limit (refused before allocating).
  case tooLarge
  /// Partial manifests that do not belong together.
  case mergeConflict
  /// Writing failed.
  case ioFailure
}

/// A problem with a shard set: the file and what is wrong, with a hint.
public typealias CacheError = DomainError<CacheErrorCode>
