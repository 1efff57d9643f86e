import SegCore
import SegModel

/// The `train:` section written out in its own YAML schema (as JSON), so a shard set can carry
/// how to train on it (`manifest.json`'s `train`) and `unet train --shards DIR` can read it back
/// through the same parser as a pipeline file: `parse(json:file:)` of `json` gives the section
/// back.
extension TrainSection {
  /// Every setting, under the keys the pipeline file uses (keys that do not apply to the
  /// architecture are left out, as the parser requires).
  public var json: JSONValue {
    var network: [(String, JSONValue)] = [("architecture", .string(architecture.rawValue)), ("depth", .int(depth)), ("width", .int(width))]
    if let padding { network.append(("padding", .string(padding.rawValue))) }
    if architecture != .unet3p {
      network += [("up", .string(upMode.rawValue)), ("batch_norm", .bool(batchNorm))]
    }
    if architecture == .unet { network.append(("dropout", .double(dropout))) }
    if architecture != .unet, let deepSupervision { network.append(("deep_supervision", .bool(deepSupervision))) }
    if architecture == .unet3p {
      if let cgm { network.append(("cgm", .bool(cgm))) }
      network.append(("cgm_dropout", .double(cgmDropout)))
    }
    var optimizerFields: [(String, JSONValue)] = [("kind", .string(optimizer.rawValue)), ("weight_decay", .double(weightDecay))]
    switch optimizer {
    case .sgd: optimizerFields.append(("momentum", .double(momentum)))
    case .adam: optimizerFields += [("beta1", .double(beta1)), ("beta2", .double(beta2))]
    }
    var lossFields: [(String, JSONValue)] = [
      ("terms", .string(LossTerm.name(loss))), ("focal_alpha", .double(focalAlpha)), ("focal_gamma", .double(focalGamma)),
      ("classification_weight", .double(classificationWeight)),
    ]
    switch headWeights {
    case .mean?: lossFields.append(("head_weights", "mean"))
    case .sum?: lossFields.append(("head_weights", "sum"))
    case .weights(let w)?: lossFields.append(("head_weights", .array(w.map { .double(Double($0)) })))
    case nil: break
    }
    var prediction: [(String, JSONValue)] = [("heads", .string(self.prediction.heads.rawValue))]
    if let d = self.prediction.pruneDepth { prediction.append(("prune_depth", .int(d))) }
    var fields: [(String, JSONValue)] = [
      ("network", .object(network)), ("optimizer", .object(optimizerFields)),
      ("schedule", .object([
        ("kind", .string(schedule.rawValue)), ("lr", .double(learningRate)), ("step_size", .int(stepSize)), ("gamma", .double(gamma)),
        ("floor", .double(floor)), ("patience", .int(patience)),
      ])),
      ("loss", .object(lossFields)), ("prediction", .object(prediction)),
      ("calibration", .string(calibration?.rawValue ?? "none")), ("keep_best", .bool(keepBest)),
      ("fresh_augmentation", .bool(freshAugmentation)), ("keep_epochs", .int(keepEpochs)),
    ]
    if let steps { fields.append(("steps", .int(steps))) }
    if let epochs { fields.append(("epochs", .int(epochs))) }
    fields.append(("batch", .int(batch)))
    if let sources = validationSources {
      fields.append(("validation", .object([("sources", .array(sources.map { .string($0) }))])))
    } else {
      fields.append(("validation", .object([("fraction", .double(validationFraction))])))
    }
    if let evalEvery { fields.append(("eval_every", .int(evalEvery))) }
    fields += [("checkpoint_every", .int(checkpointEvery)), ("log_every", .int(logEvery))]
    if let m = maxGradientNorm { fields.append(("max_gradient_norm", .double(m))) }
    fields.append(("shuffle_buffer", .int(shuffleBuffer)))
    if let classes { fields.append(("classes", .int(classes))) }
    return .object(fields)
  }

  /// Parses a section written by ``json`` (or any JSON in the pipeline file's schema); errors
  /// name `file` (e.g. the manifest it came from).
  public static func parse(json: JSONValue, file: String) throws(PipelineError) -> TrainSection {
    try parse(try ConfigNode.parse(json.serialized(spaced: false), file: file, limits: PipelineLimits()))
  }
}
