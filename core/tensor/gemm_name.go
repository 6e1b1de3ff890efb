package tensor

const gemmKernelName = "generic Go"
