"""Models and generations: registering models against manifests, generation depth, lineage trees and the generation audit."""
