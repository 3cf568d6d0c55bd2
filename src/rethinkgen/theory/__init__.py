"""The paper's theory made executable: Theorem 1's memorizing network (Section 4)."""
