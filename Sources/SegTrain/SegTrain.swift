/// The U-Net trainer: tensors, layers with hand-written backward passes, losses, optimizers
/// and checkpoints, on OpenBLAS. (Being built; see issue 7.)
public enum SegTrain {}
