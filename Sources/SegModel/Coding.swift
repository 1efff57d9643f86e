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
