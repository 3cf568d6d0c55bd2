"""The paper's theory made executable: Theorem 1's memorizing network (expressivity), minimum-norm
kernel interpolation and its feature maps (kernels, features, experiments), and capacity probes
(Rademacher complexity, uniform stability)."""
