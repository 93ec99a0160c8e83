"""Building blocks shared by the model families."""
from asclab.models.layers.conv import conv_bn
from asclab.models.layers.frequency_split import FrequencySplit
from asclab.models.layers.norm import BatchNorm2dNoAffine, SubSpectralNorm
from asclab.models.layers.shared_block import SharedResidualBlock

__all__ = ["BatchNorm2dNoAffine", "FrequencySplit", "SharedResidualBlock", "SubSpectralNorm", "conv_bn"]
