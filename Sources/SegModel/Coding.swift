/// A coding key for any string (to list or look up keys that no `CodingKeys` enum names).
struct AnyCodingKey: CodingKey {
  var stringValue: String
  var intValue: Int? { nil }
  init(_ string: String) { stringValue = string }
  init(stringValue: String) { self.stringValue = stringValue }
  init?(intValue: Int) { nil }
}

/// Throws when the keyed container at `decoder` holds a key not in `known`.
func rejectUnknownKeys(_ decoder: any Decoder, known: [String], what: String) throws {
  let c = try decoder.container(keyedBy: AnyCodingKey.self)
  let unknown = c.allKeys.map(\.stringValue).filter { !known.contains($0) }
  if let first = unknown.sorted().first {
    throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath + [AnyCodingKey(first)], debugDescription: "unknown key '\(first)' in the \(what) (known: \(known.sorted().joined(separator: ", ")))"))
  }
}

/// Throws when the container at `decoder` names an `architecture` other than `expected` (a
/// configuration of one architecture may carry its own name; v1 files carry none).
func expectArchitecture(_ decoder: any Decoder, _ expected: Architecture) throws {
  let c = try decoder.container(keyedBy: AnyCodingKey.self)
  guard let found = try c.decodeIfPresent(Architecture.self, forKey: AnyCodingKey("architecture")) else { return }
  if found != expected {
    throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "a \(expected.displayName) configuration names architecture '\(found.rawValue)'"))
  }
}

/// Opens a network configuration for decoding: rejects keys other than `keys` and
/// `architecture`, checks the architecture, and reads `version`, which must be `currentVersion`.
///
/// - Parameter what: the configuration as errors name it ("U-Net++ configuration").
func openConfiguration<Key: CodingKey & CaseIterable>(
  _ decoder: any Decoder, keys: Key.Type, architecture: Architecture, what: String, currentVersion: Int
) throws -> (container: KeyedDecodingContainer<Key>, version: Int) {
  try rejectUnknownKeys(decoder, known: Key.allCases.map(\.stringValue) + ["architecture"], what: what)
  try expectArchitecture(decoder, architecture)
  let c = try decoder.container(keyedBy: Key.self)
  guard let versionKey = Key(stringValue: "version") else { preconditionFailure("\(Key.self) has no version key") }
  let version = try c.decode(Int.self, forKey: versionKey)
  guard version == currentVersion else {
    throw DecodingError.dataCorruptedError(
      forKey: versionKey, in: c, debugDescription: "unsupported \(what) version \(version) (this build reads \(currentVersion))")
  }
  return (c, version)
}

/// Throws the first of a decoded configuration's problems, if it has any.
func rejectProblems(_ problems: [String], _ decoder: any Decoder) throws {
  if let problem = problems.first {
    throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: problem))
  }
}

/// The checks of depth and width every architecture shares (widths base_width·2^level).
func sizeProblems(depth: Int, maxDepth: Int, baseWidth: Int) -> [String] {
  var out: [String] = []
  if depth < 1 || depth > maxDepth { out.append("depth must be in 1...\(maxDepth), not \(depth)") }
  if baseWidth < 1 { out.append("base_width must be at least 1, not \(baseWidth)") }
  if baseWidth << max(0, min(depth, maxDepth)) > 1 << 20 { out.append("base_width·2^depth is unreasonably large") }
  return out
}
