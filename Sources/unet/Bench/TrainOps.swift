extension Bench {
  /// train_step_* ops (issue 7).
  static var trainOps: [BenchOp] { [] }
}
