"""Citation and references shared by the packaged `evaluate` metric modules."""

CITATION = """\
@inproceedings{dai2023why,
  title={Why Can {GPT} Learn In-Context? Language Models Implicitly Perform Gradient Descent as Meta-Optimizers},
  author={Dai, Damai and Sun, Yutao and Dong, Li and Hao, Yaru and Ma, Shuming and Sui, Zhifang and Wei, Furu},
  booktitle={Findings of the Association for Computational Linguistics: ACL 2023},
  year={2023}
}
@inproceedings{deutch2024incontext,
  title={In-context Learning and Gradient Descent Revisited},
  author={Deutch, Gilad and Magar, Nadav and Natan, Tomer Bar and Dar, Guy},
  booktitle={Proceedings of NAACL 2024},
  year={2024}
}
"""

REFERENCE_URLS = [
    "https://arxiv.org/abs/2212.10559",
    "https://github.com/microsoft/LMOps/tree/main/understand_icl",
    "https://arxiv.org/abs/2311.07772",
]

# The output-distribution comparison (the label_shift module).
SHEN_CITATION = """\
@inproceedings{shen2024pretrained,
  title={Do pretrained Transformers Learn In-Context by Gradient Descent?},
  author={Shen, Lingfeng and Mishra, Aayush and Khashabi, Daniel},
  booktitle={Proceedings of the 41st International Conference on Machine Learning (ICML)},
  year={2024}
}
"""

SHEN_URL = "https://arxiv.org/abs/2310.08540"
